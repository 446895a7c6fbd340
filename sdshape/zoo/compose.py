"""Compositions: any text encoder, UNet and VAE from the zoo, made to fit together.

When the text encoder's width differs from the UNet's cross-attention width,
the UNet is rebuilt with a matching ``cross_attention_dim`` (its to_k/to_v
projections change size) and the parameter change is reported: that is what
moving to a bigger text encoder costs the UNet. Combinations that cannot work
are usage errors: a VAE whose latent channels differ from the UNet's, an
SDXL-style UNet without pooled text embeddings, a sequence longer than a CLIP
encoder's 77 positions.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from sdshape.call_inputs import max_tokens, text_hidden_size, text_pooled_size, vae_scale_factor
from sdshape.errors import UsageError
from sdshape.limits import whole_number
from sdshape.zoo import SHAPE_SPECS, ShapeSpec, get_component, get_shape
from sdshape.zoo.specs import ComponentSpec

# The scheduler a UNet was trained with (v-prediction for SD 2.1, SDXL's spacing); SD 1.x otherwise.
_SCHEDULER_OF_UNET = {shape.unet: shape.scheduler for shape in SHAPE_SPECS.values()}


def adapt_cross_attention(unet: ComponentSpec, width: int) -> ComponentSpec:
    """The UNet rebuilt to attend to ``width``-wide text states."""
    if unet.config.get("cross_attention_dim") == width:
        return unet
    return dataclasses.replace(
        unet,
        name=f"{unet.name}@xattn{width}",
        config={**unet.config, "cross_attention_dim": width},
        source=f"{unet.source} (cross_attention_dim adapted to {width})",
        description=f"{unet.description}, cross-attention adapted to {width}-wide text",
    )


def compose(
    text_encoder: str,
    unet: str,
    vae: str,
    sequence_length: int | None = None,
    name: str | None = None,
) -> ShapeSpec:
    from sdshape.build import count_params, meta_module

    te_spec, unet_spec, vae_spec = get_component(text_encoder), get_component(unet), get_component(vae)
    for spec, kind in ((te_spec, "text_encoder"), (unet_spec, "unet"), (vae_spec, "vae")):
        if spec.kind != kind:
            raise UsageError(f"{spec.name!r} is a {spec.kind}, not a {kind}; see `sdshape zoo`")
    latents = vae_spec.config.get("latent_channels", 4)
    if latents != unet_spec.config.get("in_channels", 4):
        raise UsageError(
            f"VAE {vae} has {latents} latent channels but UNet {unet} takes {unet_spec.config.get('in_channels', 4)}"
        )
    if unet_spec.config.get("addition_embed_type") == "text_time":
        pooled = text_pooled_size(te_spec)
        time_dims = 6 * unet_spec.config["addition_time_embed_dim"]
        needed = unet_spec.config["projection_class_embeddings_input_dim"] - time_dims
        if pooled != needed:
            raise UsageError(
                f"UNet {unet} needs {needed}-wide pooled text embeddings (SDXL conditioning); "
                f"text encoder {text_encoder} gives {pooled or 'none'}"
            )
    tokens = sequence_length or 77
    limit = max_tokens(te_spec)
    if limit is not None and tokens > limit:
        raise UsageError(f"--seq-len {tokens}: text encoder {text_encoder} takes at most {limit} tokens")
    width = text_hidden_size(te_spec)
    adapted = adapt_cross_attention(unet_spec, width)
    notes: list[str] = []
    if adapted is not unet_spec:
        before = count_params(meta_module(unet_spec))
        after = count_params(meta_module(adapted))
        notes.append(
            f"UNet {unet} cross-attention {unet_spec.config.get('cross_attention_dim')} -> {width} to match "
            f"{text_encoder}: {after - before:+,} parameters ({before:,} -> {after:,})"
        )
    native = unet_spec.config.get("sample_size", 64) * vae_scale_factor(vae_spec)
    return ShapeSpec(
        name=name or f"{text_encoder}+{unet}+{vae}",
        text_encoder=te_spec.name,
        unet=adapted.name,
        vae=vae_spec.name,
        scheduler=dict(_SCHEDULER_OF_UNET.get(unet, SHAPE_SPECS["sd15"].scheduler)),
        native_resolution=native,
        description=f"composition: {text_encoder} + {unet} + {vae}",
        source="composed from zoo components",
        sequence_length=tokens,
        specs={"text_encoder": te_spec, "unet": adapted, "vae": vae_spec},
        notes=tuple(notes),
    )


def with_overrides(
    base: str,
    text_encoder: str | None,
    unet: str | None,
    vae: str | None,
    sequence_length: int | None,
    file_shapes: dict[str, ShapeSpec],
) -> ShapeSpec:
    """A named shape (zoo or shapes file), with any component or the sequence length swapped."""
    shape = file_shapes[base] if base in file_shapes else get_shape(base)
    swapped = bool(text_encoder or unet or vae)
    if not swapped and sequence_length in (None, shape.sequence_length):
        return shape
    return compose(
        text_encoder or shape.text_encoder,
        unet or shape.unet.split("@")[0],  # a shapes-file UNet may carry its adaptation suffix
        vae or shape.vae,
        sequence_length or shape.sequence_length,
        name=None if swapped else f"{shape.name}@seq{sequence_length}",
    )


def load_shapes_file(path: str | Path) -> dict[str, ShapeSpec]:
    """Named compositions from TOML: [shape.NAME] text_encoder, unet, vae, optional sequence_length."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--shapes-file {path}: cannot read: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"--shapes-file {path}: not TOML: {error}") from None
    if set(data) - {"shape"} or not isinstance(data.get("shape"), dict) or not data["shape"]:
        raise UsageError(f"--shapes-file {path}: expected [shape.NAME] tables")
    shapes: dict[str, ShapeSpec] = {}
    allowed = {"text_encoder", "unet", "vae", "sequence_length"}
    for name, entry in data["shape"].items():
        if not isinstance(entry, dict):
            raise UsageError(f"--shapes-file {path}: shape {name!r} is not a table")
        missing = [k for k in ("text_encoder", "unet", "vae") if k not in entry]
        unknown = set(entry) - allowed
        if missing or unknown:
            problem = f"missing {', '.join(missing)}" if missing else f"unknown keys {sorted(unknown)}"
            raise UsageError(f"--shapes-file {path}: shape {name!r}: {problem}; keys: {', '.join(sorted(allowed))}")
        if name in SHAPE_SPECS:
            raise UsageError(f"--shapes-file {path}: shape {name!r} would shadow a zoo shape; pick another name")
        where = f"--shapes-file {path}: shape {name!r}:"
        for key in ("text_encoder", "unet", "vae"):
            if not isinstance(entry[key], str):
                raise UsageError(f"{where} {key} must be a component name (a string), got {entry[key]!r}")
        tokens = entry.get("sequence_length")
        if tokens is not None:
            try:  # the same rule as --seq-len
                whole_number("sequence_length", tokens)
            except UsageError as error:
                raise UsageError(f"{where} {error}") from None
        shapes[name] = compose(entry["text_encoder"], entry["unet"], entry["vae"], tokens, name)
    return shapes
