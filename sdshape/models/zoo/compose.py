"""Compositions: any text encoder, denoiser and VAE from the zoo, made to fit together.

The denoiser's family adapts it to the text encoder (``Family.adapt``): a UNet's cross-attention width,
a PixArt DiT's caption projection, an MMDiT's joint-attention and pooled widths. The parameter change
is reported: that is what moving to another text encoder costs the denoiser. Combinations that cannot
work are usage errors: a VAE whose latent channels differ from what the denoiser takes, conditioning
the denoiser needs and the encoder lacks (SDXL's or SD3's pooled embeddings), a sequence longer than a
CLIP encoder's 77 positions.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from sdshape.core.bounds import whole_number
from sdshape.core.errors import UsageError
from sdshape.models.call_inputs import max_tokens, vae_scale_factor
from sdshape.models.families import family_name_of, family_of
from sdshape.models.zoo import ShapeSpec, all_shapes, get_component, get_shape

# Each denoiser's pipeline defaults (scheduler, steps, guidance) come from the named shape that runs it.
_SHAPE_OF_DENOISER = {shape.denoiser: shape for shape in reversed(list(all_shapes().values()))}


def _family_name(denoiser: str) -> str:
    return family_name_of(get_component(denoiser).library_class)


def pipeline_of(denoiser: str) -> ShapeSpec:
    """The named shape whose pipeline defaults a composition with this denoiser takes: its own, else the
    first published shape of its family (a BK-SDM or scaled UNet runs as SD 1.5 does)."""
    if denoiser in _SHAPE_OF_DENOISER:
        return _SHAPE_OF_DENOISER[denoiser]
    family = _family_name(denoiser)
    return next(
        shape for shape in all_shapes().values() if "test" not in shape.tags and _family_name(shape.denoiser) == family
    )


def compose(
    text_encoder: str,
    denoiser: str,
    vae: str,
    sequence_length: int | None = None,
    name: str | None = None,
) -> ShapeSpec:
    from sdshape.models.build import spec_params

    te_spec, denoiser_spec, vae_spec = get_component(text_encoder), get_component(denoiser), get_component(vae)
    for spec, kind in ((te_spec, "text_encoder"), (denoiser_spec, "denoiser"), (vae_spec, "vae")):
        if spec.kind != kind:
            raise UsageError(f"{spec.name!r} is a {spec.kind}, not a {kind}; see `sdshape zoo`")
    family = family_of(denoiser_spec)
    latents = vae_spec.config.get("latent_channels", 4)
    takes = family.denoiser_latent_channels(denoiser_spec)
    if latents != takes:
        raise UsageError(f"VAE {vae} has {latents} latent channels but denoiser {denoiser} takes {takes}")
    pipeline = pipeline_of(denoiser)
    tokens = sequence_length or (pipeline.sequence_length if max_tokens(te_spec) is None else 77)
    limit = max_tokens(te_spec)
    if limit is not None and tokens > limit:
        raise UsageError(f"--seq-len {tokens}: text encoder {text_encoder} takes at most {limit} tokens")
    adapted, change = family.adapt(denoiser_spec, te_spec)
    notes: list[str] = []
    if change is not None:
        before, after = spec_params(denoiser_spec), spec_params(adapted)
        notes.append(f"{change}: {after - before:+,} parameters ({before:,} -> {after:,})")
    sample = denoiser_spec.config.get("sample_size")
    native = sample * vae_scale_factor(vae_spec) if sample else pipeline.native_resolution
    return ShapeSpec(
        name=name or f"{text_encoder}+{denoiser}+{vae}",
        text_encoder=te_spec.name,
        denoiser=adapted.name,
        vae=vae_spec.name,
        scheduler=dict(pipeline.scheduler),
        native_resolution=native,
        description=f"composition: {text_encoder} + {denoiser} + {vae}",
        source="composed from zoo components",
        sequence_length=tokens,
        steps=pipeline.steps,
        guidance_scale=pipeline.guidance_scale,
        specs={"text_encoder": te_spec, "denoiser": adapted, "vae": vae_spec},
        notes=tuple(notes),
    )


def with_overrides(
    base: str,
    text_encoder: str | None,
    denoiser: str | None,
    vae: str | None,
    sequence_length: int | None,
    file_shapes: dict[str, ShapeSpec],
) -> ShapeSpec:
    """A named shape (zoo or shapes file), with any component or the sequence length swapped."""
    shape = file_shapes[base] if base in file_shapes else get_shape(base)
    swapped = bool(text_encoder or denoiser or vae)
    if not swapped and sequence_length in (None, shape.sequence_length):
        return shape
    return compose(
        text_encoder or shape.text_encoder,
        denoiser or shape.denoiser.split("@")[0],  # a shapes-file denoiser may carry its adaptation suffix
        vae or shape.vae,
        sequence_length or shape.sequence_length,
        name=None if swapped else f"{shape.name}@seq{sequence_length}",
    )


def load_shapes_file(path: str | Path) -> dict[str, ShapeSpec]:
    """Named compositions from TOML: [shape.NAME] text_encoder, denoiser (or unet), vae, optional sequence_length."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--shapes-file {path}: cannot read: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"--shapes-file {path}: not TOML: {error}") from None
    if set(data) - {"shape"} or not isinstance(data.get("shape"), dict) or not data["shape"]:
        raise UsageError(f"--shapes-file {path}: expected [shape.NAME] tables")
    shapes: dict[str, ShapeSpec] = {}
    allowed = {"text_encoder", "denoiser", "vae", "sequence_length"}
    for name, entry in data["shape"].items():
        if not isinstance(entry, dict):
            raise UsageError(f"--shapes-file {path}: shape {name!r} is not a table")
        if "unet" in entry and "denoiser" not in entry:  # files written before the families: unet = ...
            entry = {("denoiser" if key == "unet" else key): value for key, value in entry.items()}
        missing = [k for k in ("text_encoder", "denoiser", "vae") if k not in entry]
        unknown = set(entry) - allowed
        if missing or unknown:
            problem = f"missing {', '.join(missing)}" if missing else f"unknown keys {sorted(unknown)}"
            raise UsageError(f"--shapes-file {path}: shape {name!r}: {problem}; keys: {', '.join(sorted(allowed))}")
        if name in all_shapes():
            raise UsageError(f"--shapes-file {path}: shape {name!r} would shadow a zoo shape; pick another name")
        where = f"--shapes-file {path}: shape {name!r}:"
        for key in ("text_encoder", "denoiser", "vae"):
            if not isinstance(entry[key], str):
                raise UsageError(f"{where} {key} must be a component name (a string), got {entry[key]!r}")
        tokens = entry.get("sequence_length")
        if tokens is not None:
            try:  # the same rule as --seq-len
                whole_number("sequence_length", tokens)
            except UsageError as error:
                raise UsageError(f"{where} {error}") from None
        shapes[name] = compose(entry["text_encoder"], entry["denoiser"], entry["vae"], tokens, name)
    return shapes
