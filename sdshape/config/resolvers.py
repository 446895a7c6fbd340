"""The small steps of :func:`sdshape.config.plan.resolve`, in the order it takes them, one way down:

1. :func:`resolve_shape`: the shape and its components, every zoo (or ``--weights`` folder) lookup once;
2. :func:`resolve_device`: where the run goes;
3. :func:`resolve_backends`: each backend's label, name and options;
4. :func:`fill_defaults`: every option left out, the device's default filled in;
5. :func:`check_values`: the checks that take only resolved values (the limits).

Each takes what the earlier ones returned and nothing else, so no value is looked up or checked twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from sdshape.config import limits
from sdshape.config.declaring import CPU_DEFAULTS, DEFAULT_SHAPE, GPU_DEFAULTS
from sdshape.config.options import RunOptions
from sdshape.core.errors import UsageError
from sdshape.models.zoo import ComponentSpec, ShapeSpec, get_shape, shape_components

CLIP_TOKENS = 77  # CLIP's context, when the shape names none (a --weights folder)

BackendSpecs = dict[str, tuple[str, dict[str, Any]]]  # label -> (registered name, its options)


@dataclass(frozen=True)
class ResolvedShape:
    """What the shape options name, looked up once: the zoo composition and its components (None for a
    --weights folder), its native resolution, the scheduler and VAE configs the limits read, and whether its
    pipeline decodes an fp16 run in fp32."""

    name: str
    spec: ShapeSpec | None
    native_resolution: int
    scheduler: dict[str, Any] = field(repr=False)
    vae_config: dict[str, Any] = field(repr=False)
    components: dict[str, ComponentSpec] | None = field(default=None, repr=False)
    upcasts_vae: bool = False
    weights: Path | None = None


def resolve_shape(o: RunOptions) -> ResolvedShape:
    """The zoo shape, a shapes-file shape, a composition (--text-encoder/--denoiser/--vae), or a folder."""
    if o.weights is not None:
        if o.text_encoder or o.denoiser or o.vae or o.shapes_file:
            raise UsageError(
                "--weights loads a whole pipeline: --text-encoder/--denoiser/--vae/--shapes-file do not apply"
            )
        from sdshape.models.weights_folder import folder_configs, folder_upcasts_vae, weights_native_resolution

        weights = Path(o.weights)
        native = weights_native_resolution(weights)  # checks the folder's layout and configs first
        scheduler, vae_config = folder_configs(weights)
        upcasts = folder_upcasts_vae(weights, vae_config)
        return ResolvedShape(DEFAULT_SHAPE, None, native, scheduler, vae_config, None, upcasts, weights)
    from sdshape.models.families import family_of
    from sdshape.models.zoo.compose import load_shapes_file, with_overrides

    file_shapes = load_shapes_file(o.shapes_file) if o.shapes_file else {}
    name = o.shape or DEFAULT_SHAPE
    if o.shape is None and len(file_shapes) == 1 and not (o.text_encoder or o.denoiser or o.vae):
        name = next(iter(file_shapes))  # a file with one shape: that one
    if name not in file_shapes:
        get_shape(name)  # unknown shape -> UsageError with the choices
    spec = with_overrides(name, o.text_encoder, o.denoiser, o.vae, o.sequence_length, file_shapes)
    parts = shape_components(spec)
    upcasts = family_of(parts["denoiser"]).upcasts_vae(parts["vae"])
    scheduler, vae_config = dict(spec.scheduler or {}), dict(parts["vae"].config)
    return ResolvedShape(spec.name, spec, spec.native_resolution, scheduler, vae_config, dict(parts), upcasts)


def zoo_shape_size(name: str, steps: int | None, resolution: int | None) -> tuple[ShapeSpec, int, int]:
    """The zoo shape a static-model command (``fit``, ``inspect``) prices, with its steps and resolution:
    the pipeline's own where not given, held to the run's rules (the scheduler's steps, the denoiser's
    position table); the numbers' declared bounds were checked when they were parsed."""
    shape = get_shape(name)
    steps = shape.steps if steps is None else steps
    limits.check_steps(steps, shape.scheduler)
    resolution = resolution or shape.native_resolution
    limits.check_shape_resolution(shape_components(shape), resolution)
    return shape, steps, resolution


def resolve_device(o: RunOptions, here: bool, notes: list[str], cuda_available: Callable[[], bool]) -> str:
    """--device, or the GPU when there is one (``here=False``: the job's host, taken to have one)."""
    if o.device is None:
        device = "cuda" if not here or cuda_available() else "cpu"
        if device == "cpu":
            notes.append("no CUDA GPU found: running on the CPU")
        return device
    if here and o.device == "cuda" and not cuda_available():
        raise UsageError(
            f"--device cuda: no CUDA GPU is usable (torch {torch.__version__}, "
            f"built with CUDA {torch.version.cuda or 'none'}); valid choices here: cpu"
        )
    return o.device


def resolve_backends(
    labels: list[str], flags: dict[str, dict[str, Any]], device: str, here: bool = True
) -> BackendSpecs:
    """Canonical label -> (name, options), each resolved by its backend and (``here``) checked to be available.

    A backend flag is checked by its backend even when that backend is not in the run: a typo is an
    error, not a silently ignored flag."""
    from sdshape.backends import declared_flags, get_backend, resolve

    for backend, option in declared_flags():
        option.parse(flags.get(backend, {}).get(option.name), backend)
    specs: BackendSpecs = {}
    for label in labels:
        name = label.partition(":")[0]
        canonical, name, options = resolve(label, flags.get(name, {}), device)
        ok, reason = get_backend(name, options).available() if here else (True, None)
        if not ok:
            raise UsageError(f"backend {name!r} is not available here: {reason}")
        specs[canonical] = (name, options)
    return specs


def check_rounds(o: RunOptions) -> int | str | None:
    """--rounds: a count, auto, or None (not given); its criterion, caps and the other numbers are
    checked with their flags (:meth:`RunOptions.check`)."""
    rounds = o.rounds
    if rounds is None or rounds == "auto":
        return rounds
    try:
        count = int(rounds)
    except ValueError:
        raise UsageError(f"--rounds must be a whole number or auto, got {rounds!r}") from None
    return limits.ROUNDS.check("--rounds", count)


def fill_defaults(
    o: RunOptions, shape: ResolvedShape, device: str, specs: BackendSpecs, notes: list[str]
) -> RunOptions:
    """The options with every one left out filled in: the device's defaults (:data:`GPU_DEFAULTS`,
    :data:`CPU_DEFAULTS`), the shape's native resolution and steps; a CPU run says what it chose."""
    defaults = GPU_DEFAULTS if device == "cuda" else CPU_DEFAULTS
    chosen: list[str] = []
    resolution = o.resolution
    if resolution is None:
        resolution = shape.native_resolution
        if defaults.resolution_cap and resolution > defaults.resolution_cap:
            resolution = defaults.resolution_cap
            chosen.append(f"resolution {resolution} (native {shape.native_resolution})")
    steps = o.steps
    if steps is None:  # the pipeline's own default on a GPU; a few steps on the CPU
        steps = shape.spec.steps if (shape.spec and device == "cuda") else defaults.steps
        chosen.append(f"{steps} steps")
    rounds = check_rounds(o)
    if rounds is None:
        rounds = defaults.rounds if defaults.rounds is not None else "auto"
        chosen.append(f"{rounds} timed rounds" if rounds != "auto" else "rounds until the median is stable")
    if device == "cpu" and chosen:
        notes.append("CPU defaults chosen: " + ", ".join(chosen) + " (set --resolution/--steps/--rounds to change)")
    return replace(
        o,
        shape=shape.name,
        backend=",".join(specs),
        precision=o.precision or defaults.precision,
        device=device,
        resolution=resolution,
        steps=steps,
        rounds=rounds,
        warmup=defaults.warmup if o.warmup is None else o.warmup,
        profile=defaults.profile if o.profile is None else o.profile,
        sequence_length=shape.spec.sequence_length if shape.spec else (o.sequence_length or CLIP_TOKENS),
    )


def check_values(resolved: RunOptions, shape: ResolvedShape, specs: BackendSpecs, here: bool) -> None:
    """The checks that take only resolved values: steps within the scheduler's, the policy, the weight
    format, the resolution within the denoiser's position table, a VRAM cap on a GPU. (Whether the run fits
    the device's memory is the static model's answer: :mod:`sdshape.feasibility.preflight`.)"""
    device, precision = resolved.device, resolved.precision
    assert device is not None and precision is not None and resolved.resolution is not None
    limits.check_steps(resolved.steps, shape.scheduler)
    limits.check_policy(resolved.policy, device, specs, precision)
    limits.check_storage(precision, specs, library=here)
    if device == "cpu" and precision == "fp16":
        raise UsageError(
            "--precision fp16 on the CPU: PyTorch's CPU fp16 kernels are unusably slow "
            "(an SD 1.5 UNet step at 512x512 did not finish in 10 minutes on 2 cores); use bf16 or fp32"
        )
    if shape.components is not None:
        limits.check_shape_resolution(shape.components, resolved.resolution)
    if resolved.vram_cap is not None and device != "cuda":
        raise UsageError(
            f"--vram-cap {resolved.vram_cap}: needs a CUDA GPU (it caps torch's per-process GPU memory); "
            "on the CPU there is no VRAM to cap"
        )
