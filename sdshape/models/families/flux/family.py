"""The FLUX family's call contract, as FluxPipeline runs it.

T5-XXL's 512-token states are what the transformer attends to (jointly with the image tokens); CLIP-L's
pooled output is its global vector. Latents are packed: each 2x2 patch of the 16-channel latent becomes
one 64-wide token, with (0, row, column) position ids for the rotary embedding; the pipeline unpacks
them for the VAE. Guidance: [dev] runs one pass a step with the guidance scale as an input (a distilled
embedding, no negative prompt); [schnell] has none. Scheduler: flow-matching Euler on sigmas from 1 to
1/steps, shifted by an amount that grows with the image's token count ([dev]) or not at all ([schnell]).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from sdshape.core.errors import UsageError
from sdshape.models.families.base import (
    Conditioning,
    Family,
    Guidance,
    Sizes,
    Specs,
    StageModule,
    TextEncoders,
    encode,
    is_t5,
    pooled_width,
    stream_lengths,
    text_parts,
    vae_scale_factor,
    width,
)
from sdshape.models.specs import ComponentSpec


class PooledAndStates(TextEncoders):
    """CLIP's pooled output beside T5's last hidden states; returns (T5 states, CLIP pooled)."""

    def forward(self, input_ids: torch.Tensor, input_ids_2: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        states = pooled = None
        for encoder, spec, ids in zip(self.encoders, self.part_specs, self.inputs(input_ids, input_ids_2), strict=True):
            hidden, pool = encode(encoder, ids, "last")
            if is_t5(spec):
                states = hidden
            else:
                pooled = pool
        return states, pooled


class FluxStep(StageModule):
    """One FLUX transformer evaluation on packed latents (timestep given on the 0-1000 scale)."""

    def __init__(self, transformer: nn.Module):
        super().__init__()
        self.transformer = transformer

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        pooled_projections: torch.Tensor,
        txt_ids: torch.Tensor,
        img_ids: torch.Tensor,
        guidance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        timestep = timestep.expand(sample.shape[0]).to(sample.dtype)
        return self.transformer(
            hidden_states=sample,
            timestep=timestep / 1000,
            guidance=guidance,
            pooled_projections=pooled_projections,
            encoder_hidden_states=encoder_hidden_states,
            txt_ids=txt_ids,
            img_ids=img_ids,
            return_dict=False,
        )[0]


def _latent_side(specs: Specs, resolution: int) -> int:
    factor = vae_scale_factor(specs["vae"])
    return 2 * (resolution // (factor * 2))  # packing needs an even latent side, as the pipeline rounds


def _parts(spec: ComponentSpec) -> tuple[list[ComponentSpec], list[ComponentSpec]]:
    parts = text_parts(spec)
    return [p for p in parts if not is_t5(p)], [p for p in parts if is_t5(p)]


class FluxFamily(Family):
    name = "flux"
    description = "FLUX transformers: T5 states + CLIP pooled, packed 2x2 latents, distilled guidance, flow matching"
    denoiser_classes = ("FluxTransformer2DModel",)
    weights_folders: ClassVar[dict[str, tuple[str, ...]]] = {
        "text_encoder": ("text_encoder", "text_encoder_2"),
        "denoiser": ("transformer",),
        "vae": ("vae",),
    }
    scheduler_class = "FlowMatchEulerDiscreteScheduler"
    onnx_notes = (
        "exported as FluxStep(sample, timestep, encoder_hidden_states, pooled_projections, txt_ids, img_ids"
        "[, guidance]); over 2 GB of weights: external data"
    )

    def guidance(self, denoiser: ComponentSpec) -> Guidance:
        return "distilled" if denoiser.config.get("guidance_embeds") else "none"

    def text_module(self, encoders: list[nn.Module], spec: ComponentSpec) -> nn.Module:
        return PooledAndStates(encoders, spec)

    def step_module(self, model: nn.Module, spec: ComponentSpec) -> nn.Module:
        return FluxStep(model)

    def text_output_width(self, spec: ComponentSpec) -> int:
        return width(_parts(spec)[1][0])

    def conditioning(self, text_outputs: tuple[torch.Tensor, ...], specs: Specs, sizes: Sizes) -> Conditioning:
        from diffusers import FluxPipeline

        states, pooled = text_outputs
        side = _latent_side(specs, sizes.resolution)
        device, dtype = states.device, states.dtype
        tensors = {
            "encoder_hidden_states": states,
            "pooled_projections": pooled,
            "txt_ids": torch.zeros(states.shape[1], 3, device=device, dtype=dtype),
            "img_ids": FluxPipeline._prepare_latent_image_ids(sizes.rows, side // 2, side // 2, device, dtype),
        }
        if sizes.guidance == "distilled":
            tensors["guidance"] = torch.full([sizes.rows], sizes.guidance_scale, device=device, dtype=torch.float32)
        return Conditioning(tensors)

    def conditioning_shapes(self, specs: Specs, sizes: Sizes) -> dict[str, tuple[int, ...]]:
        text = specs["text_encoder"]
        clips, t5s = _parts(text)
        tokens = stream_lengths(text, sizes.sequence_length)[-1]
        side = _latent_side(specs, sizes.resolution)
        shapes: dict[str, tuple[int, ...]] = {
            "encoder_hidden_states": (sizes.rows, tokens, width(t5s[0])),
            "pooled_projections": (sizes.rows, pooled_width(clips[0]) or 0),
            "txt_ids": (tokens, 3),
            "img_ids": ((side // 2) ** 2, 3),
        }
        if sizes.guidance == "distilled":
            shapes["guidance"] = (sizes.rows,)
        return shapes

    # -- latents: packed 2x2 ------------------------------------------------------------------
    def denoiser_latent_channels(self, denoiser: ComponentSpec) -> int:
        return int(denoiser.config["in_channels"]) // 4

    def latent_shape(self, specs: Specs, batch: int, resolution: int) -> tuple[int, ...]:
        side = _latent_side(specs, resolution)
        channels = int(specs["vae"].config.get("latent_channels", 16))
        return (batch, (side // 2) ** 2, channels * 4)

    def vae_latent_shape(self, specs: Specs, batch: int, resolution: int) -> tuple[int, ...]:
        side = _latent_side(specs, resolution)
        return (batch, int(specs["vae"].config.get("latent_channels", 16)), side, side)

    def to_vae_latents(self, latents: torch.Tensor, specs: Specs, resolution: int) -> torch.Tensor:
        from diffusers import FluxPipeline

        return FluxPipeline._unpack_latents(latents, resolution, resolution, vae_scale_factor(specs["vae"]))

    # -- scheduler -----------------------------------------------------------------------------
    def set_timesteps(self, scheduler, steps: int, device: torch.device, latents_shape: tuple[int, ...]) -> None:
        """As FluxPipeline: sigmas 1 .. 1/steps, mu from the packed token count, begin index 0."""
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps

        config = scheduler.config
        sigmas = np.linspace(1.0, 1 / steps, steps)
        if config.get("use_flow_sigmas", False):
            sigmas = None
        mu = calculate_shift(
            latents_shape[1],
            config.get("base_image_seq_len", 256),
            config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5),
            config.get("max_shift", 1.15),
        )
        retrieve_timesteps(scheduler, steps, device, sigmas=sigmas, mu=mu)
        scheduler.set_begin_index(0)

    def model_input(self, scheduler, latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return latents

    def diffusers_pipeline(self, modules: dict, scheduler: object) -> object:
        from diffusers import FluxPipeline

        encoders = modules["text_encoder"].encoders
        return FluxPipeline(
            scheduler=scheduler, vae=modules["vae"].vae, text_encoder=encoders[0], tokenizer=None,
            text_encoder_2=encoders[1], tokenizer_2=None, transformer=modules["denoiser"].transformer,
        )  # fmt: skip

    def pipeline_inputs(self, conditioning: Conditioning) -> dict:
        return {
            "prompt_embeds": conditioning["encoder_hidden_states"],
            "pooled_prompt_embeds": conditioning["pooled_projections"],
        }

    def adapt(self, denoiser: ComponentSpec, text: ComponentSpec) -> tuple[ComponentSpec, str | None]:
        """Joint-attention width to the T5's, pooled projection to the CLIP's."""
        clips, t5s = _parts(text)
        if len(clips) != 1 or len(t5s) != 1:
            raise UsageError(
                f"a FLUX transformer takes one CLIP (pooled) and one T5 (states); {text.name} has "
                f"{len(clips)} CLIP and {len(t5s)} T5"
            )
        changes = {}
        if denoiser.config.get("joint_attention_dim") != width(t5s[0]):
            changes["joint_attention_dim"] = width(t5s[0])
        if denoiser.config.get("pooled_projection_dim") != pooled_width(clips[0]):
            changes["pooled_projection_dim"] = pooled_width(clips[0])
        if not changes:
            return denoiser, None
        what = ", ".join(f"{key} {denoiser.config.get(key)} -> {value}" for key, value in changes.items())
        suffix = "".join(f"@{key.split('_')[0]}{value}" for key, value in changes.items())
        adapted = dataclasses.replace(
            denoiser,
            name=f"{denoiser.name}{suffix}",
            config={**denoiser.config, **changes},
            source=f"{denoiser.source} ({what})",
            description=f"{denoiser.description}, adapted to {text.name}",
        )
        return adapted, f"transformer {denoiser.name} {what} to match {text.name}"
