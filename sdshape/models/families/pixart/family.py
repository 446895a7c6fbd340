"""The PixArt family's call contract, as PixArtAlphaPipeline and PixArtSigmaPipeline run it.

The T5 encoder reads the prompt with its attention mask, and the DiT attends to the T5 states by
cross-attention under the same mask (so padding costs compute but not attention weight). PixArt-α at
1024 px (sample_size 128) is also conditioned on the image's resolution and aspect ratio. The model
predicts noise and variance (8 channels); the pipeline keeps the noise half. Guidance: CFG by batch
doubling. Scheduler: DPM-Solver++ (multistep).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from sdshape.core.errors import UsageError
from sdshape.models.families.base import (
    Conditioning,
    Family,
    Sizes,
    Specs,
    StageModule,
    TextEncoders,
    encode,
    halves,
    stream_of_parts,
)
from sdshape.models.specs import ComponentSpec

PAD_ID = 1  # the pad id of sdshape's fixed prompts (sdshape.models.stages.token_ids)


def _width(config: dict) -> int:
    return config["hidden_size"] if "hidden_size" in config else config["d_model"]


class MaskedTextEncoder(TextEncoders):
    """The last hidden state of one encoder, run with the prompt's attention mask; returns (hidden, mask)."""

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = (input_ids != PAD_ID).long()
        # On the meta device (FLOP counting) transformers cannot inspect the mask's values; the mask
        # changes no FLOP count, so the encoder runs unmasked there.
        hidden, _ = encode(self.encoders[0], input_ids, "last", None if input_ids.is_meta else mask)
        return hidden, mask


class PixArtStep(StageModule):
    """One PixArt DiT evaluation, returning the noise half of its prediction."""

    def __init__(self, transformer: nn.Module):
        super().__init__()
        self.transformer = transformer
        config = transformer.config
        self.learned_sigma = config.out_channels // 2 == config.in_channels

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor,
        resolution: torch.Tensor | None = None,
        aspect_ratio: torch.Tensor | None = None,
    ) -> torch.Tensor:
        out = self.transformer(
            sample,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            timestep=timestep.expand(sample.shape[0]),
            added_cond_kwargs={"resolution": resolution, "aspect_ratio": aspect_ratio},
            return_dict=False,
        )[0]
        return out.chunk(2, dim=1)[0] if self.learned_sigma else out


def size_conditions(denoiser: ComponentSpec) -> bool:
    """Resolution and aspect-ratio conditions: as the model decides (None: only at sample_size 128)."""
    explicit = denoiser.config.get("use_additional_conditions")
    return bool(denoiser.config.get("sample_size") == 128 if explicit is None else explicit)


class PixArtFamily(Family):
    name = "pixart"
    description = "PixArt DiTs: T5 states with their attention mask by cross-attention, CFG, DPM-Solver++"
    denoiser_classes = ("PixArtTransformer2DModel",)
    weights_folders: ClassVar[dict[str, tuple[str, ...]]] = {
        "text_encoder": ("text_encoder",),
        "denoiser": ("transformer",),
        "vae": ("vae",),
    }
    scheduler_class = "DPMSolverMultistepScheduler"
    onnx_notes = (
        "exported as PixArtStep(sample, timestep, encoder_hidden_states, encoder_attention_mask"
        "[, resolution, aspect_ratio])"
    )

    def text_module(self, encoders: list[nn.Module], spec: ComponentSpec) -> nn.Module:
        return MaskedTextEncoder(encoders, spec)

    def step_module(self, model: nn.Module, spec: ComponentSpec) -> nn.Module:
        return PixArtStep(model)

    def text_output_width(self, spec: ComponentSpec) -> int:
        return _width((spec.parts[0] if spec.is_stack else spec).config)

    def conditioning(self, text_outputs: tuple[torch.Tensor, ...], specs: Specs, sizes: Sizes) -> Conditioning:
        hidden, mask = text_outputs[0], text_outputs[1]
        tensors = {"encoder_hidden_states": hidden, "encoder_attention_mask": mask}
        if size_conditions(specs["denoiser"]):
            side, rows = float(sizes.resolution), sizes.rows
            tensors["resolution"] = torch.tensor([side, side], dtype=hidden.dtype, device=hidden.device).repeat(rows, 1)
            tensors["aspect_ratio"] = torch.tensor([1.0], dtype=hidden.dtype, device=hidden.device).repeat(rows, 1)
        return Conditioning(tensors)

    def conditioning_shapes(self, specs: Specs, sizes: Sizes) -> dict[str, tuple[int, ...]]:
        rows, tokens = sizes.rows, sizes.sequence_length
        shapes: dict[str, tuple[int, ...]] = {
            "encoder_hidden_states": (rows, tokens, self.text_output_width(specs["text_encoder"])),
            "encoder_attention_mask": (rows, tokens),
        }
        if size_conditions(specs["denoiser"]):
            shapes["resolution"] = (rows, 2)
            shapes["aspect_ratio"] = (rows, 1)
        return shapes

    def diffusers_pipeline(self, modules: dict, scheduler: object) -> object:
        from diffusers import PixArtAlphaPipeline, PixArtSigmaPipeline

        transformer = modules["denoiser"].transformer
        # Σ's config turns the size conditions off; α's (and the tests') leave it to the model.
        sigma = transformer.config.get("use_additional_conditions") is False
        pipeline = PixArtSigmaPipeline if sigma else PixArtAlphaPipeline
        return pipeline(
            tokenizer=None, text_encoder=modules["text_encoder"].encoders[0], vae=modules["vae"].vae,
            transformer=transformer, scheduler=scheduler,
        )  # fmt: skip

    def pipeline_inputs(self, conditioning: Conditioning) -> dict:
        negative, prompt = halves(conditioning["encoder_hidden_states"])
        negative_mask, mask = halves(conditioning["encoder_attention_mask"])
        return {
            "prompt_embeds": prompt, "prompt_attention_mask": mask, "negative_prompt_embeds": negative,
            "negative_prompt_attention_mask": negative_mask, "negative_prompt": None, "use_resolution_binning": False,
        }  # fmt: skip

    def adapt(self, denoiser: ComponentSpec, text: ComponentSpec) -> tuple[ComponentSpec, str | None]:
        """The caption projection resized to the text encoder's width (the DiT's blocks are unchanged)."""
        if (text.is_stack and len(text.parts) > 1) or len(set(stream_of_parts(text))) > 1:
            raise UsageError(f"a PixArt DiT attends to one text encoder; {text.name} is a stack of {len(text.parts)}")
        return with_caption_width(denoiser, self.text_output_width(text), text.name)


def with_caption_width(denoiser: ComponentSpec, width: int, text_name: str) -> tuple[ComponentSpec, str | None]:
    """A DiT whose caption projection (``caption_channels``) takes ``width``-wide text, and what changed (None:
    it already did). PixArt's and other caption-projecting DiTs' (Sana's) ``adapt``: the blocks are unchanged."""
    before = denoiser.config.get("caption_channels")
    if before == width:
        return denoiser, None
    adapted = dataclasses.replace(
        denoiser,
        name=f"{denoiser.name}@caption{width}",
        config={**denoiser.config, "caption_channels": width},
        source=f"{denoiser.source} (caption_channels adapted to {width})",
        description=f"{denoiser.description}, caption projection adapted to {width}-wide text",
    )
    return adapted, f"DiT {denoiser.name} caption projection {before} -> {width} to match {text_name}"
