"""The plan of one run: the options resolved for the device that will run them.

:func:`resolve` goes down its resolvers once (:mod:`sdshape.config.resolvers`); every invalid value raises
:class:`UsageError` naming the value and the valid choices, and nothing heavy is imported or built before
validation passes. :class:`Plan` holds the resolved :class:`RunOptions` (``options``), the options as given
(``given``), and what only the device and the resolution decide, in the types the run needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from sdshape.config import limits, resolvers
from sdshape.config.identity import cache_location
from sdshape.config.options import DEFAULT_BACKEND, DEFAULTS, RunOptions, backend_flags
from sdshape.core.errors import UsageError
from sdshape.measurement.stopping import Stopping
from sdshape.models.zoo import ShapeSpec

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
    options: RunOptions = DEFAULTS  # resolved: every default filled in for this device
    given: RunOptions = DEFAULTS  # as given (what a result document records as the command's own choices)
    vae_upcast: bool = False  # VAE in fp32 (SDXL's force_upcast); a flag: the fp32 reference copies the plan

    def resolved_options(self) -> dict[str, Any]:
        """Every run option with the value this run used (defaults filled in), as result documents record it."""
        resolved = asdict(self.options)
        resolved["rounds"] = "auto" if self.rounds is None else self.rounds
        resolved["backend_options"] = {label: options for label, (_, options) in self.backend_specs.items()}
        return resolved

    def precision_of(self, kind: str) -> str:
        return "fp32" if kind == "vae" and self.vae_upcast else self.precision

    @property
    def stopping(self) -> Stopping:
        return Stopping(self.rounds, self.target_ci, self.max_rounds, self.max_time_s)

    def backend(self, label: str) -> tuple[str, dict[str, Any]]:
        return self.backend_specs.get(label, (label, {}))


def cuda_available() -> bool:
    return torch.cuda.is_available()


# The plan's fields that are the resolved option of the same name (to be read as ``plan.options.NAME``).
FROM_OPTIONS = (
    "shape", "precision", "resolution", "steps", "batch", "warmup", "seed", "sample_interval_s", "parity",
    "reference_workload", "sequence_length", "isolate", "target_ci", "max_rounds", "max_time_s", "profile",
)  # fmt: skip


def resolve(
    options: RunOptions | None = None,
    /,
    *,
    backend_flags: dict[str, dict[str, Any]] | None = None,
    known_backends: list[str] | None = None,
    here: bool = True,
    **given: Any,
) -> Plan:
    """Validate user options and fill in defaults for the device that will run, in the resolvers' order
    (:mod:`sdshape.config.resolvers`): the shape, the device, the backends, the defaults, the checks.

    ``options`` as parsed (:meth:`RunOptions.from_values`), or the options as keywords
    (``resolve(shape="tiny", device="cpu")``), named as :class:`RunOptions` names them.
    ``here=False`` checks only what holds on any machine (``sdshape matrix`` checks jobs that run on other
    hosts): no device given means a GPU; whether a backend or a format's library is installed, whether
    the device exists and the cache folder are left to the job. Whether the run fits the device's memory
    is checked after, by the harness (:func:`sdshape.feasibility.preflight.check_fits`)."""
    if options is None:
        options = RunOptions(**given)
    elif given:
        raise TypeError("resolve takes RunOptions or keywords, not both")
    o = options
    if o.weights is not None and o.shape is not None:
        raise UsageError("--weights and --shape both given: the architecture comes from the --weights folder")
    o.check()  # every given value within the bounds and choices declared with its flag
    from sdshape.backends import backend_names

    shape = resolvers.resolve_shape(o)
    labels = limits.parse_backends(o.backend or DEFAULT_BACKEND, known_backends or backend_names())
    notes: list[str] = []
    device = resolvers.resolve_device(o, here, notes, cuda_available)
    vram_cap_bytes = None
    if o.vram_cap is not None:
        from sdshape.core.units import parse_size

        vram_cap_bytes = parse_size(o.vram_cap)
    specs = resolvers.resolve_backends(labels, backend_flags or {}, device, here)
    resolved = resolvers.fill_defaults(o, shape, device, specs, notes)
    resolvers.check_values(resolved, shape, specs, here)
    cache_root, cache_fallback = cache_location(o.cache_dir, notes) if here else (None, None)
    resolved = replace(resolved, cache_dir=str(cache_root) if cache_root is not None else None)
    precision = resolved.precision
    vae = limits.run_vae_precision(precision, shape.vae_config, shape.spec, shape.weights, o.vae_fp16, notes)
    return Plan(
        **{name: getattr(resolved, name) for name in FROM_OPTIONS},  # type: ignore[arg-type]
        backends=list(specs),
        backend_specs=specs,
        device=torch.device(device),
        rounds=None if resolved.rounds == "auto" else int(resolved.rounds),  # type: ignore[arg-type]
        weights=shape.weights,
        guidance=shape.spec.guidance_scale if shape.spec else GUIDANCE_WITH_WEIGHTS,
        notes=notes,
        cache_dir=cache_root,
        cache_fallback=cache_fallback,
        vram_cap_bytes=vram_cap_bytes,
        shape_spec=shape.spec,
        options=resolved,
        given=options,
        vae_upcast=vae != precision,
    )


def plan_from(values: Mapping[str, Any]) -> Plan:
    """The plan for parsed run options (argparse's namespace or pytest's), backend flags included."""
    return resolve(RunOptions.from_values(values), backend_flags=backend_flags(values))
