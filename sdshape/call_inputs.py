"""Input shapes of each stage call, derived from component configs alone.

One place decides what every backend sees: FLOP counting on the meta device
uses these shapes, and so do export and engine profiles. Classifier-free
guidance doubles the text-encoder and UNet batch (unconditional + conditional);
the VAE decodes only the guided latents.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdshape.zoo import ComponentKind, ComponentSpec

# SDXL's micro-conditioning: original size, crop top-left, target size.
TIME_IDS = 6


def _text_parts(spec: ComponentSpec) -> tuple[ComponentSpec, ...]:
    return spec.parts if spec.is_stack else (spec,)


def width(config: dict) -> int:
    """Hidden width of a text encoder config (CLIP: hidden_size, T5: d_model)."""
    return config["hidden_size"] if "hidden_size" in config else config["d_model"]


def text_hidden_size(spec: ComponentSpec) -> int:
    return sum(width(part.config) for part in _text_parts(spec))


def max_tokens(spec: ComponentSpec) -> int | None:
    """The longest sequence the text encoder takes (CLIP: its position table; T5: no limit)."""
    limits = [
        part.config["max_position_embeddings"] for part in _text_parts(spec) if "max_position_embeddings" in part.config
    ]
    return min(limits) if limits else None


def text_pooled_size(spec: ComponentSpec) -> int | None:
    return _text_parts(spec)[-1].config["projection_dim"] if spec.pooled else None


def vocab_size(spec: ComponentSpec) -> int:
    return min(part.config["vocab_size"] for part in _text_parts(spec))


def vae_scale_factor(spec: ComponentSpec) -> int:
    """Pixels per latent along a side: AutoencoderKL halves per level; AutoencoderTiny likewise."""
    levels = spec.config.get("block_out_channels") or spec.config.get("decoder_block_out_channels")
    return 2 ** (len(levels) - 1)


@dataclass(frozen=True)
class CallShapes:
    """Per-call input shapes of the three stage modules for one run configuration."""

    batch: int
    resolution: int
    sequence_length: int
    text_encoder: dict[str, tuple[int, ...]]
    unet: dict[str, tuple[int, ...]]
    vae: dict[str, tuple[int, ...]]

    def for_kind(self, kind: ComponentKind) -> dict[str, tuple[int, ...]]:
        return {"text_encoder": self.text_encoder, "unet": self.unet, "vae": self.vae}[kind]


def call_shapes(
    specs: dict[ComponentKind, ComponentSpec], batch: int, resolution: int, sequence_length: int = 77, cfg: bool = True
) -> CallShapes:
    rows = 2 * batch if cfg else batch
    unet, vae = specs["unet"], specs["vae"]
    latent = resolution // vae_scale_factor(vae)
    channels = unet.config.get("in_channels", 4)
    unet_inputs: dict[str, tuple[int, ...]] = {
        "sample": (rows, channels, latent, latent),
        "timestep": (),
        "encoder_hidden_states": (rows, sequence_length, text_hidden_size(specs["text_encoder"])),
    }
    if unet.config.get("addition_embed_type") == "text_time":
        unet_inputs["text_embeds"] = (rows, text_pooled_size(specs["text_encoder"]) or 0)
        unet_inputs["time_ids"] = (rows, TIME_IDS)
    return CallShapes(
        batch=batch,
        resolution=resolution,
        sequence_length=sequence_length,
        text_encoder={"input_ids": (rows, sequence_length)},
        unet=unet_inputs,
        vae={"latents": (batch, vae.config.get("latent_channels", 4), latent, latent)},
    )
