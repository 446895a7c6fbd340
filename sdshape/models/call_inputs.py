"""Input shapes of each stage call, derived from component configs and the denoiser's family alone.

One place decides what every backend sees: FLOP counting on the meta device uses these shapes, and so
do export and engine profiles. The text stage reads one token stream per tokenizer (CLIP's 77 tokens,
T5's own length). Classifier-free guidance doubles the text-encoder and denoiser rows (the negative
prompt is encoded too); a guidance-distilled or unguided denoiser sees the prompt batch once. The VAE
decodes only the guided latents.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdshape.models.families import family_of
from sdshape.models.families.base import Sizes, stream_lengths, text_parts, vae_scale_factor, width
from sdshape.models.text_kinds import kind_of
from sdshape.models.zoo import ComponentKind, ComponentSpec

# Inputs that are integers (token ids, attention masks); every other input is floating point.
__all__ = ["CallShapes", "call_shapes", "max_tokens", "text_hidden_size", "vae_scale_factor", "vocab_size"]

INTEGER_INPUTS = ("input_ids", "input_ids_2", "encoder_attention_mask")
TEXT_INPUT_NAMES = ("input_ids", "input_ids_2")


def text_hidden_size(spec: ComponentSpec) -> int:
    """The summed widths of a text encoder's parts (a stack's concatenated width, for a UNet)."""
    return sum(width(part) for part in text_parts(spec))


def max_tokens(spec: ComponentSpec) -> int | None:
    """The longest sequence the text encoder takes when every part has a position table (CLIP's); else
    None: a T5 or decoder-LLM stream has no limit, and CLIP towers beside one read their own 77 tokens."""
    parts = text_parts(spec)
    if any(kind_of(part).length_key is None for part in parts):
        return None
    limits = [limit for part in parts if (limit := kind_of(part).length_limit(part))]
    return min(limits) if limits else None


def vocab_size(spec: ComponentSpec) -> int:
    return min(part.config["vocab_size"] for part in text_parts(spec))


@dataclass(frozen=True)
class CallShapes:
    """Per-call input shapes of the three stage modules for one run configuration."""

    batch: int
    resolution: int
    sequence_length: int
    sizes: Sizes
    text_encoder: dict[str, tuple[int, ...]]
    denoiser: dict[str, tuple[int, ...]]
    vae: dict[str, tuple[int, ...]]

    @property
    def guidance(self) -> str:
        return self.sizes.guidance

    def for_kind(self, kind: ComponentKind) -> dict[str, tuple[int, ...]]:
        return {"text_encoder": self.text_encoder, "denoiser": self.denoiser, "vae": self.vae}[kind]


def sizes_of(
    specs: dict[ComponentKind, ComponentSpec], batch: int, resolution: int, sequence_length: int, guidance_scale: float
) -> Sizes:
    family = family_of(specs["denoiser"])
    return Sizes(batch, resolution, sequence_length, family.guidance(specs["denoiser"]), guidance_scale)


def call_shapes(
    specs: dict[ComponentKind, ComponentSpec],
    batch: int,
    resolution: int,
    sequence_length: int = 77,
    guidance_scale: float = 7.5,
) -> CallShapes:
    family = family_of(specs["denoiser"])
    sizes = sizes_of(specs, batch, resolution, sequence_length, guidance_scale)
    rows = sizes.rows
    streams = stream_lengths(specs["text_encoder"], sequence_length)
    latent = family.latent_shape(specs, batch, resolution)
    return CallShapes(
        batch=batch,
        resolution=resolution,
        sequence_length=sequence_length,
        sizes=sizes,
        text_encoder={name: (rows, tokens) for name, tokens in zip(TEXT_INPUT_NAMES, streams, strict=False)},
        denoiser={
            "sample": (rows, *latent[1:]),
            "timestep": (),
            **family.conditioning_shapes(specs, sizes),
        },
        vae={"latents": family.vae_latent_shape(specs, batch, resolution)},
    )
