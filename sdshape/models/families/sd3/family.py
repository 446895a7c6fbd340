"""The SD3 family's call contract, as StableDiffusion3Pipeline runs it.

CLIP-L and bigG read the prompt at 77 tokens; their penultimate hidden states are concatenated on the
feature axis (2048) and zero-padded to T5's width (4096); T5-XXL reads its own 256-token stream; the
two are joined along the sequence (77 + 256 = 333 tokens), which the MMDiT attends to jointly with the
image tokens. The two pooled, projected CLIP outputs, concatenated (2048), condition it too.
Guidance: CFG by batch doubling. Scheduler: flow-matching Euler with a static shift of 3.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as F
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
    is_t5,
    pooled_width,
    stream_lengths,
    text_parts,
    width,
)
from sdshape.models.specs import ComponentSpec


class JointText(TextEncoders):
    """CLIP towers (penultimate, pooled) beside an optional T5; returns (joint hidden states, pooled)."""

    def forward(self, input_ids: torch.Tensor, input_ids_2: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        clip_states, pooled, t5_states = [], [], None
        for encoder, spec, ids in zip(self.encoders, self.part_specs, self.inputs(input_ids, input_ids_2), strict=True):
            if is_t5(spec):
                t5_states = encode(encoder, ids, "last")[0]
            else:
                hidden, pool = encode(encoder, ids, "penultimate")
                clip_states.append(hidden)
                pooled.append(pool)
        hidden = torch.cat(clip_states, dim=-1)
        if t5_states is not None:
            hidden = F.pad(hidden, (0, t5_states.shape[-1] - hidden.shape[-1]))
            hidden = torch.cat([hidden, t5_states], dim=-2)
        return hidden, torch.cat(pooled, dim=-1)


class SD3Step(StageModule):
    """One MMDiT evaluation."""

    def __init__(self, transformer: nn.Module):
        super().__init__()
        self.transformer = transformer

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        pooled_projections: torch.Tensor,
    ) -> torch.Tensor:
        return self.transformer(
            hidden_states=sample,
            timestep=timestep.expand(sample.shape[0]),
            encoder_hidden_states=encoder_hidden_states,
            pooled_projections=pooled_projections,
            return_dict=False,
        )[0]


def _split(spec: ComponentSpec) -> tuple[list[ComponentSpec], list[ComponentSpec]]:
    parts = text_parts(spec)
    return [p for p in parts if not is_t5(p)], [p for p in parts if is_t5(p)]


class SD3Family(Family):
    name = "sd3"
    description = "SD3 MMDiTs: CLIP + T5 joined along the sequence, pooled CLIP projections, CFG, flow matching"
    denoiser_classes = ("SD3Transformer2DModel",)
    weights_folders: ClassVar[dict[str, tuple[str, ...]]] = {
        "text_encoder": ("text_encoder", "text_encoder_2", "text_encoder_3"),
        "denoiser": ("transformer",),
        "vae": ("vae",),
    }
    scheduler_class = "FlowMatchEulerDiscreteScheduler"
    onnx_notes = "exported as SD3Step(sample, timestep, encoder_hidden_states, pooled_projections)"

    def text_module(self, encoders: list[nn.Module], spec: ComponentSpec) -> nn.Module:
        return JointText(encoders, spec)

    def step_module(self, model: nn.Module, spec: ComponentSpec) -> nn.Module:
        return SD3Step(model)

    def text_output_width(self, spec: ComponentSpec) -> int:
        clips, t5s = _split(spec)
        return width(t5s[0]) if t5s else sum(width(p) for p in clips)

    def conditioning(self, text_outputs: tuple[torch.Tensor, ...], specs: Specs, sizes: Sizes) -> Conditioning:
        return Conditioning({"encoder_hidden_states": text_outputs[0], "pooled_projections": text_outputs[1]})

    def conditioning_shapes(self, specs: Specs, sizes: Sizes) -> dict[str, tuple[int, ...]]:
        text = specs["text_encoder"]
        tokens = sum(stream_lengths(text, sizes.sequence_length))
        pooled = sum(pooled_width(p) or 0 for p in _split(text)[0])
        return {
            "encoder_hidden_states": (sizes.rows, tokens, self.text_output_width(text)),
            "pooled_projections": (sizes.rows, pooled),
        }

    def set_timesteps(self, scheduler, steps: int, device: torch.device, latents_shape: tuple[int, ...]) -> None:
        """As the pipeline: a resolution-dependent shift only when the scheduler asks for one."""
        kwargs = {}
        config = scheduler.config
        if config.get("use_dynamic_shifting", None):
            from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import calculate_shift

            patch = 2
            seq = (latents_shape[-2] // patch) * (latents_shape[-1] // patch)
            kwargs["mu"] = calculate_shift(
                seq,
                config.get("base_image_seq_len", 256),
                config.get("max_image_seq_len", 4096),
                config.get("base_shift", 0.5),
                config.get("max_shift", 1.16),
            )
        scheduler.set_timesteps(steps, device=device, **kwargs)

    def model_input(self, scheduler, latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return latents  # flow matching: the pipeline feeds the latents unscaled

    def diffusers_pipeline(self, modules: dict, scheduler: object) -> object:
        from diffusers import StableDiffusion3Pipeline

        encoders = list(modules["text_encoder"].encoders)
        return StableDiffusion3Pipeline(
            transformer=modules["denoiser"].transformer, scheduler=scheduler, vae=modules["vae"].vae,
            text_encoder=encoders[0], tokenizer=None, text_encoder_2=encoders[1], tokenizer_2=None,
            text_encoder_3=encoders[2] if len(encoders) > 2 else None, tokenizer_3=None,
        )  # fmt: skip

    def pipeline_inputs(self, conditioning: Conditioning) -> dict:
        negative, prompt = halves(conditioning["encoder_hidden_states"])
        negative_pooled, pooled = halves(conditioning["pooled_projections"])
        return {
            "prompt_embeds": prompt, "negative_prompt_embeds": negative, "pooled_prompt_embeds": pooled,
            "negative_pooled_prompt_embeds": negative_pooled,
        }  # fmt: skip

    def adapt(self, denoiser: ComponentSpec, text: ComponentSpec) -> tuple[ComponentSpec, str | None]:
        """Joint-attention and pooled-projection widths resized to the text encoders'."""
        clips, _ = _split(text)
        if not clips:
            raise UsageError(f"an SD3 MMDiT is conditioned on pooled CLIP projections; {text.name} has no CLIP tower")
        changes = {}
        joint, pooled = self.text_output_width(text), sum(pooled_width(p) or 0 for p in clips)
        if denoiser.config.get("joint_attention_dim") != joint:
            changes["joint_attention_dim"] = joint
        if denoiser.config.get("pooled_projection_dim") != pooled:
            changes["pooled_projection_dim"] = pooled
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
        return adapted, f"MMDiT {denoiser.name} {what} to match {text.name}"
