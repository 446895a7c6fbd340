"""Calibrate the time model on measured runs and public figures, then validate it on figures it never saw.

- The server host's cost per launch: every eager GPU loop on file, its step time over the launches the
  trace counts. Those runs were host-bound (an H100 under eager PyTorch at batch 1, a 16-core Xeon).
- One factor per architecture: modelled GPU time at the datasheet rates over measured GPU time. From
  sdshape's own runs under CUDA graphs (no host time at all) where there are any, else from the public
  figures that calibrate ``architecture``. An architecture with neither takes the mean and says so.
- The rest is solved figure by figure: the number that makes the projection equal the figure (the desktop
  host's cost per launch, each policy's share of the link's rate, the dequantization kernels'
  efficiency), the geometric mean over a number's figures when it has several.
- Validation: every ``role = "validation"`` figure, and every stage's allocator peak in the GPU runs,
  grouped by class (resident, offload, format, batch): each class's band of measured over projected
  seconds is what ``sdshape fit`` prints beside a projection of that class.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdshape.core.errors import UsageError
from sdshape.core.units import GIB
from sdshape.feasibility.catalog import GPU, match_measured
from sdshape.feasibility.figures import Figure
from sdshape.feasibility.formats import FORMATS
from sdshape.feasibility.measured_fit import ASSUMED_CONTEXT_BYTES
from sdshape.feasibility.policies import peak_bytes
from sdshape.feasibility.static import ShapeStatic
from sdshape.feasibility.time_model import Fitted, TimeModel, project
from sdshape.feasibility.timing import ArchEfficiency, gpu_seconds
from sdshape.result.io import ResultFile, load

UNIT = ArchEfficiency(1.0, "datasheet rates")
CONTEXT_GIB = ASSUMED_CONTEXT_BYTES / GIB  # fit's CUDA context: in a reserved or unstated peak, not an allocated one


@dataclass(frozen=True)
class Conditions:
    """What the static model is traced at for one figure or run."""

    shape: str
    resolution: int
    precision: str = "fp16"
    batch: int = 1
    vae_fp16: bool = False
    tiled: bool = False
    quantized: tuple[str, ...] | None = None
    keep_fp32: bool | None = None  # None: as the installed libraries keep unquantized layers


StaticOf = Callable[[Conditions], ShapeStatic]


@dataclass(frozen=True)
class MeasuredLoop:
    file: str
    gpu: GPU
    shape: str
    resolution: int
    precision: str
    backend: str
    steps: int
    median_s: float

    @property
    def step_s(self) -> float:
        return self.median_s / self.steps


def gpu_results(root: Path) -> list[ResultFile]:
    """The results files under ``root``, each read once (shapes documents and logs are left out)."""
    results = []
    for path in sorted(root.rglob("*.json")):
        try:
            results.append(load(path))
        except UsageError:
            continue  # not a results file
    return results


def measured_loops(results: list[ResultFile], catalog: dict[str, GPU]) -> list[MeasuredLoop]:
    """Every ok denoising loop measured on a catalog GPU in these results files."""
    loops = []
    for result in results:
        gpu = match_measured(catalog, result.machine_info.get("gpu_name"), result.machine_info.get("gpu_memory_bytes"))
        for row in result.rows.values():
            if row.stage != "denoise_loop" or row.status != "ok" or row.device != "cuda" or gpu is None:
                continue
            key = row.id.as_dict()
            loops.append(
                MeasuredLoop(
                    result.path.name, gpu, key["shape"], key["resolution"], key["precision"], key["backend"],
                    key["steps"], row.median,
                )
            )  # fmt: skip
    return loops


def conditions_of(figure: Figure) -> Conditions:
    return Conditions(
        figure.shape,
        figure.resolution,
        figure.precision,
        figure.batch,
        vae_fp16=False,
        tiled=figure.vae_tiling,
        quantized=figure.quantized,
        keep_fp32=figure.keep_fp32,
    )


def projected_value(figure: Figure, model: TimeModel, static_of: StaticOf, catalog: dict[str, GPU]) -> float:
    """The model's figure in the figure's own unit: it/s, seconds a call, GiB, or 1 for an OOM."""
    static = static_of(conditions_of(figure))
    gpu = catalog[figure.gpu]
    if figure.kind == "weights_gib":
        return static.weight_bytes / GIB
    if figure.kind in ("peak_gib", "peak_allocated_gib", "oom"):
        tiled = static_of(dataclasses.replace(conditions_of(figure), tiled=True)) if figure.vae_tiling else None
        peak = peak_bytes(static, figure.policy, tiled) / GIB
        if figure.kind == "oom":
            return 1.0 if peak + CONTEXT_GIB > gpu.vram_gib else 0.0
        return peak
    backend = "compile" if figure.backend.startswith("compile") else "eager"
    fmt = FORMATS[figure.precision]
    projection = project(
        dataclasses.replace(static, steps=figure.steps), gpu, model, backend, figure.policy, None,
        figure.host_class, fmt,
    )  # fmt: skip
    if figure.kind == "loop_it_s":
        return 1 / projection.loop_step_s
    return projection.seconds_per_batch


def measured_seconds(figure: Figure, value: float) -> float:
    """A time figure as seconds (a loop's it/s inverted), so that errors and bands read one way."""
    return 1 / value if figure.kind == "loop_it_s" else value


def _solve(figure: Figure, make: Callable[[float], TimeModel], static_of: StaticOf, catalog: dict[str, GPU]) -> float:
    """The parameter (a rate or an efficiency: larger is faster) that makes the projection equal the figure,
    by bisection in log space."""
    target = measured_seconds(figure, figure.value)

    def seconds(x: float) -> float:
        return measured_seconds(figure, projected_value(figure, make(x), static_of, catalog))

    low, high = 1e-4, 1e4
    if not seconds(high) <= target <= seconds(low):
        raise ValueError(f"{figure.id}: no value of the parameter reproduces {figure.value} {figure.unit}")
    for _ in range(60):
        middle = math.sqrt(low * high)
        if seconds(middle) > target:
            low = middle
        else:
            high = middle
    return math.sqrt(low * high)


def _geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def calibrate(
    figures: list[Figure], loops: list[MeasuredLoop], static_of: StaticOf, catalog: dict[str, GPU]
) -> TimeModel:
    eager = [lp for lp in loops if lp.backend == "eager" and lp.precision in ("fp16", "bf16")]
    if not eager:
        raise ValueError("no eager GPU loop on file: the host's cost per launch cannot be calibrated")
    per_launch = [
        lp.step_s / static_of(Conditions(lp.shape, lp.resolution, lp.precision, vae_fp16=True))
        .stages["denoise_loop"].trace.launches
        for lp in eager
    ]  # fmt: skip
    server = Fitted(
        statistics.median(per_launch),
        f"median over {len(eager)} eager loops measured on {', '.join(sorted({lp.gpu.name for lp in eager}))} "
        f"({', '.join(sorted({lp.shape for lp in eager}))}; "
        f"{min(per_launch) * 1e6:.0f} to {max(per_launch) * 1e6:.0f} us a launch), a 16-core Xeon server",
    )
    model = TimeModel({"server": server, "desktop": server}, {})
    model.architectures = _architectures(figures, loops, model, static_of, catalog)
    calibrating = [f for f in figures if f.role == "calibration"]
    for host in ("server", "desktop"):
        mine = [f for f in calibrating if f.calibrates == "host" and f.host_class == host]
        if not mine:
            continue
        found = [
            _solve(
                f, lambda x, h=host: _with(model, hosts={**model.hosts, h: Fitted(1e-6 / x, "")}), static_of, catalog
            )
            for f in mine
        ]
        solved = "; ".join(f"{f.id} ({f.source}): {1 / x:.1f} us" for f, x in zip(mine, found, strict=True))
        if host == "server":  # beside sdshape's own host-bound H100 loops
            value = math.exp(statistics.fmean([math.log(server.value), *(math.log(1e-6 / x) for x in found)]))
            model.hosts[host] = Fitted(value, f"geometric mean of {server.source}, and {solved}")
        else:
            model.hosts[host] = Fitted(1e-6 / _geomean(found), f"a desktop, solved on {solved}")
    for policy in sorted({f.policy for f in calibrating if f.calibrates == "link"}):
        mine = [f for f in calibrating if f.calibrates == "link" and f.policy == policy]
        found = [
            _solve(f, lambda x, p=policy: _with(model, links={**model.links, p: Fitted(x, "")}), static_of, catalog)
            for f in mine
        ]
        model.links[policy] = Fitted(
            _geomean(found),
            "solved on " + "; ".join(f"{f.id} ({f.source}): {x:.3f}" for f, x in zip(mine, found, strict=True)),
        )
    dequant = [f for f in calibrating if f.calibrates == "dequant"]
    if dequant:
        found = [_solve(f, lambda x: _with(model, dequant=Fitted(x, "")), static_of, catalog) for f in dequant]
        model.dequant = Fitted(
            _geomean(found),
            "dequantization kernels' share of the bandwidth, solved on "
            + "; ".join(f"{f.id} ({f.source}): {x:.3f}" for f, x in zip(dequant, found, strict=True)),
        )
    return model


def _with(model: TimeModel, **changes: Any) -> TimeModel:
    return dataclasses.replace(model, **changes)


def _architectures(
    figures: list[Figure], loops: list[MeasuredLoop], model: TimeModel, static_of: StaticOf, catalog: dict[str, GPU]
) -> dict[str, ArchEfficiency]:
    factors: dict[str, list[tuple[float, str]]] = {}
    for lp in loops:
        if lp.backend == "compile:reduce-overhead" and lp.gpu.architecture:
            trace = static_of(Conditions(lp.shape, lp.resolution, lp.precision, vae_fp16=True))
            factor = gpu_seconds(trace.stages["denoise_loop"].trace, lp.gpu, UNIT) / lp.step_s
            factors.setdefault(lp.gpu.architecture, []).append((factor, f"{lp.file} ({lp.gpu.name}, CUDA graphs)"))
    for figure in figures:
        if figure.role != "calibration" or figure.calibrates != "architecture":
            continue
        gpu = catalog[figure.gpu]
        if gpu.architecture in factors and any("CUDA graphs" in s for _, s in factors[gpu.architecture]):
            continue  # a run of our own on this architecture outranks a public figure
        if figure.kind != "loop_it_s":
            raise ValueError(f"{figure.id}: only loop figures calibrate an architecture")
        trace = static_of(conditions_of(figure)).stages["denoise_loop"].trace
        measured = 1 / figure.value
        if figure.backend == "eager" and trace.launches * model.host(figure.host_class).value >= measured:
            raise ValueError(f"{figure.id}: host-bound by the model's own host cost; it cannot calibrate the GPU")
        factor = gpu_seconds(trace, gpu, UNIT) / measured
        factors.setdefault(gpu.architecture or "", []).append((factor, f"{figure.id} ({figure.source})"))
    return {
        arch: ArchEfficiency(_geomean([f for f, _ in found]), "; ".join(s for _, s in found))
        for arch, found in factors.items()
    }
