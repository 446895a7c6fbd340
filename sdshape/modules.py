"""The three stage modules, with plain-tensor inputs and outputs.

Backends wrap these (not the library models) so that every backend sees the same
call: token ids in, hidden states out; one denoising step; latents to pixels.
Plain tensors in and out is also what ONNX export and TensorRT need.
"""

from __future__ import annotations

import torch
from torch import nn


class TextEncoderModule(nn.Module):
    """One or more text encoders, combined the way the pipeline combines them.

    SD 1.x/2.x: the last hidden state (after the final layer norm).
    SDXL: the penultimate hidden state of each encoder, concatenated on the
    feature axis, plus the last encoder's projected pooled output (text_embeds).
    """

    returns_tuple = True  # (hidden,) or (hidden, pooled): backends keep this structure

    def __init__(self, encoders: list[nn.Module], hidden_layer: str = "last", pooled: bool = False):
        super().__init__()
        self.encoders = nn.ModuleList(encoders)
        self.hidden_layer = hidden_layer
        self.pooled = pooled

    @property
    def hidden_size(self) -> int:
        return sum(encoder.config.hidden_size for encoder in self.encoders)

    @property
    def pooled_size(self) -> int | None:
        return self.encoders[-1].config.projection_dim if self.pooled else None

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        penultimate = self.hidden_layer == "penultimate"
        hidden_states = []
        output = None
        for encoder in self.encoders:
            output = encoder(input_ids, output_hidden_states=penultimate, return_dict=True)
            hidden_states.append(output.hidden_states[-2] if penultimate else output.last_hidden_state)
        hidden = torch.cat(hidden_states, dim=-1) if len(hidden_states) > 1 else hidden_states[0]
        if self.pooled:
            return hidden, output.text_embeds
        return (hidden,)


class UNetStep(nn.Module):
    """One UNet evaluation: the unit a backend compiles, exports or builds an engine for."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet
        self.text_time = unet.config.get("addition_embed_type") == "text_time"

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        text_embeds: torch.Tensor | None = None,
        time_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        added = {"text_embeds": text_embeds, "time_ids": time_ids} if self.text_time else None
        return self.unet(
            sample, timestep, encoder_hidden_states=encoder_hidden_states, added_cond_kwargs=added, return_dict=False
        )[0]


class VAEDecode(nn.Module):
    """Latents (in the diffusion model's scaled space) to pixels."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents / self.scaling_factor, return_dict=False)[0]

    @property
    def executed_params(self) -> int:
        """Parameters decode actually runs: the decoder and post_quant_conv, not the encoder."""
        parts = [self.vae.decoder, getattr(self.vae, "post_quant_conv", None)]
        return sum(p.numel() for part in parts if part is not None for p in part.parameters())
