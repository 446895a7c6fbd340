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
    """A validated, fully resolved run: the options with every default filled in for this device
    (``options``; read ``plan.options.steps``), the options as given (``given``), and only what the device
    and the shape's resolution decide in a type of their own."""

    options: RunOptions  # resolved: every default filled in (rounds: a count or "auto")
    device: torch.device
    # label (as shown in results, e.g. "compile:reduce-overhead") -> (registered name, its options)
    backend_specs: dict[str, tuple[str, dict[str, Any]]]
    given: RunOptions = DEFAULTS  # as the user gave them (None: left to the plan)
    guidance: float = GUIDANCE_WITH_WEIGHTS
    notes: list[str] = field(default_factory=list)
    cache_dir: Path | None = None
    cache_fallback: Path | None = None  # where new artifacts go when cache_dir is read-only
    vram_cap_bytes: int | None = None
    shape_spec: ShapeSpec | None = None  # None for a --weights folder
    vae_upcast: bool = False  # VAE in fp32 (SDXL's force_upcast); a flag: the fp32 reference copies the plan

    @property
    def backends(self) -> list[str]:
        return list(self.backend_specs)

    @property
    def rounds(self) -> int | None:
        """Timed rounds per stage; None: until the median is stable (``stopping``)."""
        return None if self.options.rounds == "auto" else int(self.options.rounds)  # type: ignore[arg-type]

    @property
    def weights(self) -> Path | None:
        return Path(self.options.weights) if self.options.weights is not None else None

    def with_options(self, **changes: Any) -> Plan:
        """This plan with some resolved options changed (the parity reference's fp32, a composition's shape)."""
        return replace(self, options=replace(self.options, **changes))

    def resolved_options(self) -> dict[str, Any]:
        """Every run option with the value this run used (defaults filled in), as result documents record it."""
        resolved = asdict(self.options)
        resolved["backend_options"] = {label: options for label, (_, options) in self.backend_specs.items()}
        return resolved

    def precision_of(self, kind: str) -> str:
        precision = self.options.precision
        assert precision is not None  # resolved
        return "fp32" if kind == "vae" and self.vae_upcast else precision

    @property
    def stopping(self) -> Stopping:
        o = self.options
        return Stopping(self.rounds, o.target_ci, o.max_rounds, o.max_time_s)

    def backend(self, label: str) -> tuple[str, dict[str, Any]]:
        return self.backend_specs.get(label, (label, {}))


def cuda_available() -> bool:
    return torch.cuda.is_available()


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
    vae = limits.run_vae_precision(precision, shape.upcasts_vae, o.vae_fp16, notes)
    return Plan(
        options=resolved,
        device=torch.device(device),
        backend_specs=specs,
        given=options,
        guidance=shape.spec.guidance_scale if shape.spec else GUIDANCE_WITH_WEIGHTS,
        notes=notes,
        cache_dir=cache_root,
        cache_fallback=cache_fallback,
        vram_cap_bytes=vram_cap_bytes,
        shape_spec=shape.spec,
        vae_upcast=vae != precision,
    )


def plan_from(values: Mapping[str, Any]) -> Plan:
    """The plan for parsed run options (argparse's namespace or pytest's), backend flags included."""
    return resolve(RunOptions.from_values(values), backend_flags=backend_flags(values))
