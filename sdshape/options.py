"""Run options: validation and the device-dependent defaults, shared by the CLI and bench/.

Every invalid value raises :class:`UsageError` naming the value and the valid
choices; nothing heavy is imported or built before validation passes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sdshape.errors import UsageError, choices_error
from sdshape.zoo import get_shape

PRECISIONS = ("fp32", "fp16", "bf16")
DEVICES = ("cuda", "cpu")
STAGES = ("text_encoder", "unet_loop", "vae_decode", "pipeline")


@dataclass(frozen=True)
class Defaults:
    """What a run does when a flag is left out, per device kind."""

    precision: str
    steps: int
    rounds: int
    warmup: int
    resolution_cap: int | None  # None: the shape's native resolution


GPU_DEFAULTS = Defaults(precision="fp16", steps=50, rounds=5, warmup=2, resolution_cap=None)
# Sized so `sdshape run` with no flags (SD 1.5 at 256x256) prints its table in about 2 minutes on 2 CPU cores.
CPU_DEFAULTS = Defaults(precision="fp32", steps=3, rounds=3, warmup=1, resolution_cap=256)


@dataclass
class Plan:
    """A validated, fully resolved run."""

    shape: str
    backends: list[str]
    precision: str
    device: torch.device
    resolution: int
    steps: int
    batch: int
    rounds: int
    warmup: int
    weights: Path | None = None
    seed: int = 0
    guidance: float = 7.5
    sample_interval_s: float = 0.02
    notes: list[str] = field(default_factory=list)


def cuda_available() -> bool:
    return torch.cuda.is_available()


def _positive(name: str, value: int | None, minimum: int = 1) -> None:
    if value is not None and value < minimum:
        raise UsageError(f"{name} must be at least {minimum}, got {value}")


def check_resolution(value: int | None) -> None:
    if value is not None and (value <= 0 or value % 8):
        raise UsageError(f"--resolution must be a positive multiple of 8 (latents are 1/8 of the image), got {value}")


def parse_backends(value: str, known: list[str]) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise choices_error("backend", value, known)
    for name in names:
        if name not in known:
            raise choices_error("backend", name, known)
    return list(dict.fromkeys(names))  # a backend named twice runs once


def resolve(
    *,
    shape: str | None = None,
    backend: str = "eager",
    precision: str | None = None,
    device: str | None = None,
    resolution: int | None = None,
    steps: int | None = None,
    batch: int = 1,
    rounds: int | None = None,
    warmup: int | None = None,
    weights: str | os.PathLike | None = None,
    seed: int = 0,
    known_backends: list[str] | None = None,
) -> Plan:
    """Validate user options and fill in defaults for the device that will run."""
    from backends import backend_names

    shape_name = shape or "sd15"
    if weights is not None and shape is not None:
        raise UsageError("--weights and --shape both given: the architecture comes from the --weights folder")
    if weights is None:
        native = get_shape(shape_name).native_resolution  # unknown shape -> UsageError with the choices
    else:
        from sdshape.build import weights_native_resolution

        native = weights_native_resolution(Path(weights))
    if device is not None and device not in DEVICES:
        raise choices_error("device", device, DEVICES)
    if precision is not None and precision not in PRECISIONS:
        raise choices_error("precision", precision, PRECISIONS)
    check_resolution(resolution)
    _positive("--steps", steps)
    _positive("--batch", batch)
    _positive("--rounds", rounds)
    _positive("--warmup", warmup, minimum=0)
    backends = parse_backends(backend, known_backends or backend_names())

    notes: list[str] = []
    if device is None:
        device = "cuda" if cuda_available() else "cpu"
        if device == "cpu":
            notes.append("no CUDA GPU found: running on the CPU")
    elif device == "cuda" and not cuda_available():
        raise UsageError(
            f"--device cuda: no CUDA GPU is usable (torch {torch.__version__}, "
            f"built with CUDA {torch.version.cuda or 'none'}); valid choices here: cpu"
        )
    defaults = GPU_DEFAULTS if device == "cuda" else CPU_DEFAULTS
    precision = precision or defaults.precision
    if device == "cpu" and precision == "fp16":
        raise UsageError(
            "--precision fp16 on the CPU: PyTorch's CPU fp16 kernels are unusably slow "
            "(an SD 1.5 UNet step at 512x512 did not finish in 10 minutes on 2 cores); use bf16 or fp32"
        )
    chosen: list[str] = []
    if resolution is None:
        resolution = native
        if defaults.resolution_cap and native > defaults.resolution_cap:
            resolution = defaults.resolution_cap
            chosen.append(f"resolution {resolution} (native {native})")
    if steps is None:
        steps = defaults.steps
        chosen.append(f"{steps} steps")
    if rounds is None:
        rounds = defaults.rounds
        chosen.append(f"{rounds} timed rounds")
    if warmup is None:
        warmup = defaults.warmup
    if device == "cpu" and chosen:
        notes.append("CPU defaults chosen: " + ", ".join(chosen) + " (set --resolution/--steps/--rounds to change)")
    return Plan(
        shape=shape_name,
        backends=backends,
        precision=precision,
        device=torch.device(device),
        resolution=resolution,
        steps=steps,
        batch=batch,
        rounds=rounds,
        warmup=warmup,
        weights=Path(weights) if weights is not None else None,
        seed=seed,
        notes=notes,
    )
