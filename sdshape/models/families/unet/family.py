"""The UNet family's call contract, as StableDiffusionPipeline and StableDiffusionXLPipeline run it.

SD 1.x/2.x: the last hidden state of one CLIP tower conditions the UNet by cross-attention.
SDXL: the penultimate hidden states of both towers, concatenated on the feature axis (2048 wide), plus
the pooled, projected output of the second (``text_embeds``) and the size/crop ids (``time_ids``).
Guidance: CFG by batch doubling. Scheduler: Euler discrete, from the model's scheduler config.
"""

from __future__ import annotations

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
    halves,
    stream_of_parts,
    text_parts,
)
from sdshape.models.specs import ComponentSpec

# SDXL's micro-conditioning: original size, crop top-left, target size.
TIME_IDS = 6


def _width(config: dict) -> int:
    return config["hidden_size"] if "hidden_size" in config else config["d_model"]


class TextEncoderModule(StageModule):
    """One or more text encoders on one token stream, combined the way the UNet pipelines combine them."""

    returns_tuple = True  # (hidden,) or (hidden, pooled): backends keep this structure

    def __init__(self, encoders: list[nn.Module], hidden_layer: str = "last", pooled: bool = False):
        super().__init__()
        self.encoders = nn.ModuleList(encoders)
        self.hidden_layer = hidden_layer
        self.pooled = pooled

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


class UNetStep(StageModule):
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


def text_time(denoiser: ComponentSpec) -> bool:
    return denoiser.config.get("addition_embed_type") == "text_time"


def pooled_size(spec: ComponentSpec) -> int | None:
    return text_parts(spec)[-1].config.get("projection_dim") if spec.pooled else None


class UNetFamily(Family):
    name = "unet"
    description = "UNet denoisers (SD 1.x, 2.x, XL): cross-attention on CLIP or T5 states, CFG, Euler"
    denoiser_classes = ("UNet2DConditionModel",)
    weights_folders: ClassVar[dict[str, tuple[str, ...]]] = {
        "text_encoder": ("text_encoder", "text_encoder_2"),
        "denoiser": ("unet",),
        "vae": ("vae",),
    }
    scheduler_class = "EulerDiscreteScheduler"
    onnx_notes = "exported as UNetStep(sample, timestep, encoder_hidden_states[, text_embeds, time_ids])"

    def text_module(self, encoders: list[nn.Module], spec: ComponentSpec) -> nn.Module:
        return TextEncoderModule(encoders, hidden_layer=spec.hidden_layer, pooled=spec.pooled)

    def step_module(self, model: nn.Module, spec: ComponentSpec) -> nn.Module:
        return UNetStep(model)

    def text_output_width(self, spec: ComponentSpec) -> int:
        return sum(_width(part.config) for part in text_parts(spec))

    def conditioning(self, text_outputs: tuple[torch.Tensor, ...], specs: Specs, sizes: Sizes) -> Conditioning:
        hidden = text_outputs[0]
        if not text_time(specs["denoiser"]):
            return Conditioning({"encoder_hidden_states": hidden})
        side = sizes.resolution
        # (original h, original w, crop top, crop left, target h, target w), as SDXL's pipeline builds it.
        ids = torch.tensor([side, side, 0, 0, side, side], dtype=hidden.dtype, device=hidden.device)
        return Conditioning(
            {"encoder_hidden_states": hidden, "text_embeds": text_outputs[1], "time_ids": ids.repeat(sizes.rows, 1)}
        )

    def conditioning_shapes(self, specs: Specs, sizes: Sizes) -> dict[str, tuple[int, ...]]:
        rows, text = sizes.rows, specs["text_encoder"]
        shapes: dict[str, tuple[int, ...]] = {
            "encoder_hidden_states": (rows, sizes.sequence_length, self.text_output_width(text))
        }
        if text_time(specs["denoiser"]):
            shapes["text_embeds"] = (rows, pooled_size(text) or 0)
            shapes["time_ids"] = (rows, TIME_IDS)
        return shapes

    def diffusers_pipeline(self, modules: dict, scheduler: object) -> object:
        from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

        encoders = modules["text_encoder"].encoders
        unet, vae = modules["denoiser"].unet, modules["vae"].vae
        if modules["denoiser"].text_time:
            return StableDiffusionXLPipeline(
                vae=vae, unet=unet, scheduler=scheduler, text_encoder=encoders[0], text_encoder_2=encoders[1],
                tokenizer=None, tokenizer_2=None,
            )  # fmt: skip
        return StableDiffusionPipeline(
            vae=vae, unet=unet, scheduler=scheduler, text_encoder=encoders[0], tokenizer=None, safety_checker=None,
            feature_extractor=None, requires_safety_checker=False,
        )  # fmt: skip

    def pipeline_inputs(self, conditioning: Conditioning) -> dict:
        negative, prompt = halves(conditioning["encoder_hidden_states"])
        inputs = {"prompt_embeds": prompt, "negative_prompt_embeds": negative}
        pooled = conditioning.get("text_embeds")
        if pooled is not None:
            inputs["negative_pooled_prompt_embeds"], inputs["pooled_prompt_embeds"] = halves(pooled)
        return inputs

    def upcasts_vae(self, vae: ComponentSpec) -> bool:
        """StableDiffusionXLPipeline upcasts a float16 VAE whose config says ``force_upcast`` (the SDXL
        VAE overflows in fp16); StableDiffusionPipeline never does, and the SD VAE configs here say False."""
        return bool(vae.config.get("force_upcast", False))

    def adapt(self, denoiser: ComponentSpec, text: ComponentSpec) -> tuple[ComponentSpec, str | None]:
        """Cross-attention resized to the text encoder's width (its to_k/to_v projections change size)."""
        import dataclasses

        if len(set(stream_of_parts(text))) > 1:
            raise UsageError(
                f"text encoder {text.name} mixes CLIP and T5 streams; a UNet attends to one stream "
                "(use a single encoder or a CLIP pair)"
            )
        if text_time(denoiser):
            pooled = pooled_size(text)
            needed = (
                denoiser.config["projection_class_embeddings_input_dim"]
                - TIME_IDS * denoiser.config["addition_time_embed_dim"]
            )
            if pooled != needed:
                raise UsageError(
                    f"UNet {denoiser.name} needs {needed}-wide pooled text embeddings (SDXL conditioning); "
                    f"text encoder {text.name} gives {pooled or 'none'}"
                )
        width = self.text_output_width(text)
        before = denoiser.config.get("cross_attention_dim")
        if before == width:
            return denoiser, None
        adapted = dataclasses.replace(
            denoiser,
            name=f"{denoiser.name}@xattn{width}",
            config={**denoiser.config, "cross_attention_dim": width},
            source=f"{denoiser.source} (cross_attention_dim adapted to {width})",
            description=f"{denoiser.description}, cross-attention adapted to {width}-wide text",
        )
        return adapted, f"UNet {denoiser.name} cross-attention {before} -> {width} to match {text.name}"
