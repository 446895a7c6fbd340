"""Run options: validation and the device-dependent defaults, shared by the CLI and bench/.

Every invalid value raises :class:`UsageError` naming the value and the valid
choices; nothing heavy is imported or built before validation passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from sdshape.config import limits
from sdshape.config.identity import cache_location
from sdshape.config.options import (
    CPU_DEFAULTS,
    DEFAULT_BACKEND,
    DEFAULT_SHAPE,
    DEFAULTS,
    GPU_DEFAULTS,
    RunOptions,
    backend_flags,
)
from sdshape.core.errors import UsageError, choices_error
from sdshape.core.vocabulary import DEVICES, PRECISION_NAMES
from sdshape.measurement.stopping import Stopping
from sdshape.models.zoo import ShapeSpec, get_shape, shape_components

GUIDANCE_WITH_WEIGHTS = 7.5  # --weights folders name no pipeline defaults; SD's is used


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
    rounds: int | None  # None: until the median is stable (``stopping``)
    warmup: int
    weights: Path | None = None
    seed: int = DEFAULTS.seed
    guidance: float = GUIDANCE_WITH_WEIGHTS
    sample_interval_s: float = DEFAULTS.sample_interval_s
    notes: list[str] = field(default_factory=list)
    # label (as shown in results, e.g. "compile:reduce-overhead") -> (registered name, its options)
    backend_specs: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    cache_dir: Path | None = None
    parity: bool = DEFAULTS.parity
    reference_workload: bool = DEFAULTS.reference_workload  # measure the reference workload (--no-reference: not)
    vram_cap_bytes: int | None = None
    shape_spec: ShapeSpec | None = None  # set for compositions and shapes-file shapes
    sequence_length: int = 77  # CLIP's context, when the shape names none
    isolate: bool = DEFAULTS.isolate  # each backend in its own process (sdshape run --isolate)
    target_ci: float = DEFAULTS.target_ci
    max_rounds: int = DEFAULTS.max_rounds
    max_time_s: float = DEFAULTS.max_time_s
    profile: bool = False  # one profiled round per stage, outside the timed rounds
    cache_fallback: Path | None = None  # where new artifacts go when cache_dir is read-only
    options: RunOptions = DEFAULTS  # as given; ``resolved_options`` adds what the plan chose
    vae_upcast: bool = False  # VAE in fp32 (SDXL's force_upcast); a flag: the fp32 reference copies the plan

    def resolved_options(self) -> dict[str, Any]:
        """Every run option with the value this run used (defaults filled in), as result documents record it."""
        chosen = {
            "shape": self.shape,
            "backend": ",".join(self.backends),
            "precision": self.precision,
            "device": self.device.type,
            "resolution": self.resolution,
            "steps": self.steps,
            "rounds": "auto" if self.rounds is None else self.rounds,
            "warmup": self.warmup,
            "profile": self.profile,
            "sequence_length": self.sequence_length,
            "cache_dir": self.cache_dir,
        }
        given = asdict(self.options)
        resolved = {name: chosen.get(name, value) for name, value in given.items()}
        resolved["backend_options"] = {label: options for label, (_, options) in self.backend_specs.items()}
        return {key: str(value) if isinstance(value, Path) else value for key, value in resolved.items()}

    def precision_of(self, kind: str) -> str:
        return "fp32" if kind == "vae" and self.vae_upcast else self.precision

    @property
    def stopping(self) -> Stopping:
        return Stopping(self.rounds, self.target_ci, self.max_rounds, self.max_time_s)

    def backend(self, label: str) -> tuple[str, dict[str, Any]]:
        return self.backend_specs.get(label, (label, {}))


def cuda_available() -> bool:
    return torch.cuda.is_available()


def _backend_specs(
    labels: list[str], flags: dict[str, dict[str, Any]], device: str, here: bool = True
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Canonical label -> (name, options), each resolved by its backend and (``here``) checked to be available.

    A backend flag is checked by its backend even when that backend is not in the run: a typo is an
    error, not a silently ignored flag."""
    from sdshape.backends import declared_flags, get_backend, resolve

    for backend, option in declared_flags():
        option.parse(flags.get(backend, {}).get(option.name), backend)
    specs: dict[str, tuple[str, dict[str, Any]]] = {}
    for label in labels:
        name = label.partition(":")[0]
        canonical, name, options = resolve(label, flags.get(name, {}), device)
        ok, reason = get_backend(name, options).available() if here else (True, None)
        if not ok:
            raise UsageError(f"backend {name!r} is not available here: {reason}")
        specs[canonical] = (name, options)
    return specs


def check_rounds(o: RunOptions) -> tuple[bool, int | str | None]:
    """--rounds: a count or auto (its criterion, caps and the other numbers: :meth:`RunOptions.check`)."""
    rounds = o.rounds
    auto_rounds = rounds == "auto"
    if isinstance(rounds, str) and not auto_rounds:
        try:
            rounds = int(rounds)
        except ValueError:
            raise UsageError(f"--rounds must be a whole number or auto, got {rounds!r}") from None
    if not auto_rounds and rounds is not None:
        limits.ROUNDS.check("--rounds", rounds)
    return auto_rounds, rounds


def resolve(
    options: RunOptions | None = None,
    /,
    *,
    backend_flags: dict[str, dict[str, Any]] | None = None,
    known_backends: list[str] | None = None,
    here: bool = True,
    **given: Any,
) -> Plan:
    """Validate user options and fill in defaults for the device that will run.

    ``options`` as parsed (:meth:`RunOptions.from_values`), or the options as keywords
    (``resolve(shape="tiny", device="cpu")``), named as :class:`RunOptions` names them.
    ``here=False`` checks only what holds on any machine (``sdshape matrix`` checks jobs that run on other
    hosts): no device given means a GPU; whether a backend or a format's library is installed, whether
    the device exists, its memory and the cache folder are left to the job."""
    if options is None:
        options = RunOptions(**given)
    elif given:
        raise TypeError("resolve takes RunOptions or keywords, not both")
    o = options
    shape, precision, device, resolution, steps = o.shape, o.precision, o.device, o.resolution, o.steps
    rounds, warmup, weights, seed, batch = o.rounds, o.warmup, o.weights, o.seed, o.batch
    text_encoder, denoiser, vae, sequence_length = o.text_encoder, o.denoiser, o.vae, o.sequence_length
    shapes_file = o.shapes_file
    from sdshape.backends import backend_names

    shape_name = shape or DEFAULT_SHAPE
    if weights is not None and shape is not None:
        raise UsageError("--weights and --shape both given: the architecture comes from the --weights folder")
    o.check()  # every number within the bounds declared with its flag
    shape_spec = None
    if weights is None:
        from sdshape.models.zoo.compose import load_shapes_file, with_overrides

        file_shapes = load_shapes_file(shapes_file) if shapes_file else {}
        if shape is None and len(file_shapes) == 1 and not (text_encoder or denoiser or vae):
            shape_name = next(iter(file_shapes))  # a file with one shape: that one
        if shape_name not in file_shapes:
            get_shape(shape_name)  # unknown shape -> UsageError with the choices
        shape_spec = with_overrides(shape_name, text_encoder, denoiser, vae, sequence_length, file_shapes)
        shape_name = shape_spec.name
        native = shape_spec.native_resolution
    else:
        if text_encoder or denoiser or vae or shapes_file:
            raise UsageError(
                "--weights loads a whole pipeline: --text-encoder/--denoiser/--vae/--shapes-file do not apply"
            )
        from sdshape.models.weights_folder import weights_native_resolution

        native = weights_native_resolution(Path(weights))
    if device is not None and device not in DEVICES:
        raise choices_error("device", device, DEVICES)
    if precision is not None and precision not in PRECISION_NAMES:
        raise choices_error("precision", precision, PRECISION_NAMES)
    scheduler, vae_config = limits.run_configs(shape_spec, Path(weights) if weights is not None else None)
    limits.positive("--steps", steps, maximum=limits.train_timesteps(scheduler))
    auto_rounds, rounds = check_rounds(o)
    backends = limits.parse_backends(o.backend or DEFAULT_BACKEND, known_backends or backend_names())

    notes: list[str] = []
    if device is None:
        device = "cuda" if not here or cuda_available() else "cpu"
        if device == "cpu":
            notes.append("no CUDA GPU found: running on the CPU")
    elif here and device == "cuda" and not cuda_available():
        raise UsageError(
            f"--device cuda: no CUDA GPU is usable (torch {torch.__version__}, "
            f"built with CUDA {torch.version.cuda or 'none'}); valid choices here: cpu"
        )
    vram_cap, vram_cap_bytes = o.vram_cap, None
    if vram_cap is not None:
        from sdshape.core.units import parse_size

        vram_cap_bytes = parse_size(vram_cap)
        if device != "cuda":
            raise UsageError(
                f"--vram-cap {vram_cap}: needs a CUDA GPU (it caps torch's per-process GPU memory); "
                "on the CPU there is no VRAM to cap"
            )
    specs = _backend_specs(backends, backend_flags or {}, device, here)
    defaults = GPU_DEFAULTS if device == "cuda" else CPU_DEFAULTS
    precision = precision or defaults.precision
    limits.check_policy(o.policy, device, specs, precision)
    limits.check_storage(precision, specs, library=here)
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
    if steps is None:  # the pipeline's own default on a GPU; a few steps on the CPU
        steps = shape_spec.steps if (shape_spec and device == "cuda") else defaults.steps
        chosen.append(f"{steps} steps")
    if shape_spec is not None:
        limits.check_shape_resolution(shape_components(shape_spec), resolution)
    if auto_rounds:
        rounds = None
    elif rounds is None:
        rounds = defaults.rounds
        chosen.append(f"{rounds} timed rounds" if rounds else "rounds until the median is stable")
    if warmup is None:
        warmup = defaults.warmup
    if device == "cpu" and chosen:
        notes.append("CPU defaults chosen: " + ", ".join(chosen) + " (set --resolution/--steps/--rounds to change)")
    tokens = shape_spec.sequence_length if shape_spec else (sequence_length or 77)
    element = 4 if precision == "fp32" else 2
    if here:
        limits.check_size(vae_config, resolution, batch, tokens, element, device, o.force_size, shape_spec, precision)
    cache_root, cache_fallback = cache_location(o.cache_dir, notes) if here else (None, None)
    vae_upcast = limits.run_vae_precision(precision, vae_config, shape_spec, weights, o.vae_fp16, notes) != precision

    return Plan(
        shape=shape_name,
        backends=list(specs),
        backend_specs=specs,
        cache_dir=cache_root,
        cache_fallback=cache_fallback,
        parity=o.parity,
        reference_workload=o.reference_workload,
        vram_cap_bytes=vram_cap_bytes,
        shape_spec=shape_spec,
        sequence_length=tokens,
        precision=precision,
        device=torch.device(device),
        resolution=resolution,
        steps=steps,
        guidance=shape_spec.guidance_scale if shape_spec else GUIDANCE_WITH_WEIGHTS,
        batch=batch,
        rounds=rounds,
        warmup=warmup,
        weights=Path(weights) if weights is not None else None,
        seed=seed,
        notes=notes,
        sample_interval_s=o.sample_interval_s,
        isolate=o.isolate,
        target_ci=o.target_ci,
        max_rounds=o.max_rounds,
        max_time_s=o.max_time_s,
        profile=defaults.profile if o.profile is None else o.profile,
        options=options,
        vae_upcast=vae_upcast,
    )


def plan_from(values: Mapping[str, Any]) -> Plan:
    """The plan for parsed run options (argparse's namespace or pytest's), backend flags included."""
    return resolve(RunOptions.from_values(values), backend_flags=backend_flags(values))
