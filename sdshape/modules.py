"""The stage module every family shares: the VAE decode, with plain-tensor inputs and outputs.

Backends wrap stage modules (not the library models) so that every backend sees the same call:
token ids in, hidden states out (the family's text module); one denoising step (the family's step
module); latents to pixels (this one). Plain tensors in and out is also what ONNX export and
TensorRT need.
"""

from __future__ import annotations

import torch
from torch import nn


class VAEDecode(nn.Module):
    """Latents (in the diffusion model's scaled and shifted space) to pixels.

    SD's VAE has only a scaling factor; SD3's and FLUX's 16-channel VAEs also a shift
    (``latents / scaling_factor + shift_factor``, as their pipelines decode).
    """

    ort_model_type = "vae"

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor)
        self.shift_factor = float(vae.config.get("shift_factor") or 0.0)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        latents = latents / self.scaling_factor
        if self.shift_factor:
            latents = latents + self.shift_factor
        return self.vae.decode(latents, return_dict=False)[0]

    @property
    def executed_params(self) -> int:
        """Parameters decode actually runs: the decoder and post_quant_conv, not the encoder."""
        parts = [self.vae.decoder, getattr(self.vae, "post_quant_conv", None)]
        return sum(p.numel() for part in parts if part is not None for p in part.parameters())
