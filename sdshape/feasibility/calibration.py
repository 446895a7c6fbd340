"""Calibrate the time model on measured runs and public figures, then validate it on figures it never saw.

- Host cost per launch: every eager GPU loop on file, its step time over the launches the trace counts.
  Those runs were host-bound (an H100 under eager PyTorch at batch 1), so the step is the host's time.
- One factor per architecture: modelled GPU time at the datasheet rates over measured GPU time. From
  sdshape's own runs under CUDA graphs (no host time at all) where there are any, else from the public
  figures whose ``role`` is ``calibration``. An architecture with neither takes the mean and says so.
- Validation: every ``role = "validation"`` figure, and every stage's allocator peak in the GPU runs.
  The band of measured over projected times is what ``sdshape fit`` prints beside each projection.
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
from sdshape.feasibility.model import TimeModel, project
from sdshape.feasibility.policies import peak_bytes
from sdshape.feasibility.static import ShapeStatic
from sdshape.feasibility.timing import ArchEfficiency, gpu_seconds
from sdshape.result.io import ResultFile, load

UNIT = ArchEfficiency(1.0, "datasheet rates")
StaticOf = Callable[[str, int, str, bool], ShapeStatic]  # shape, resolution, precision, vae_fp16


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
                    result.path.name,
                    gpu,
                    key["shape"],
                    key["resolution"],
                    key["precision"],
                    key["backend"],
                    key["steps"],
                    row.median,
                )
            )
    return loops


def calibrate(
    figures: list[Figure], loops: list[MeasuredLoop], static_of: StaticOf, catalog: dict[str, GPU]
) -> TimeModel:
    eager = [lp for lp in loops if lp.backend == "eager" and lp.precision in ("fp16", "bf16")]
    if not eager:
        raise ValueError("no eager GPU loop on file: the host's cost per launch cannot be calibrated")
    per_launch = [
        lp.step_s / static_of(lp.shape, lp.resolution, lp.precision, True).stages["denoise_loop"].trace.launches
        for lp in eager
    ]
    host = statistics.median(per_launch)
    host_source = (
        f"median over {len(eager)} eager loops measured on {', '.join(sorted({lp.gpu.name for lp in eager}))} "
        f"({', '.join(sorted({lp.shape for lp in eager}))}; "
        f"{min(per_launch) * 1e6:.0f} to {max(per_launch) * 1e6:.0f} us a launch): "
        "a server host's figure; a desktop CPU launches faster"
    )
    factors: dict[str, list[tuple[float, str]]] = {}
    for lp in loops:
        if lp.backend == "compile:reduce-overhead" and lp.gpu.architecture:
            trace = static_of(lp.shape, lp.resolution, lp.precision, True).stages["denoise_loop"].trace
            factor = gpu_seconds(trace, lp.gpu, UNIT) / lp.step_s
            factors.setdefault(lp.gpu.architecture, []).append((factor, f"{lp.file} ({lp.gpu.name}, CUDA graphs)"))
    for figure in figures:
        if figure.role != "calibration":
            continue
        gpu = catalog[figure.gpu]
        if gpu.architecture in factors and any("CUDA graphs" in s for _, s in factors[gpu.architecture]):
            continue  # a run of our own on this architecture outranks a public figure
        if figure.kind != "loop_it_s":
            raise ValueError(f"{figure.id}: only loop figures calibrate")
        trace = static_of(figure.shape, figure.resolution, "fp16", False).stages["denoise_loop"].trace
        measured = 1 / figure.value
        if figure.backend == "eager" and trace.launches * host >= measured:
            raise ValueError(f"{figure.id}: host-bound by the model's own host cost; it cannot calibrate the GPU")
        factor = gpu_seconds(trace, gpu, UNIT) / measured
        factors.setdefault(gpu.architecture or "", []).append((factor, f"{figure.id} ({figure.source})"))
    architectures = {}
    for arch, found in factors.items():
        value = math.exp(statistics.fmean(math.log(f) for f, _ in found))
        architectures[arch] = ArchEfficiency(value, "; ".join(s for _, s in found))
    return TimeModel(host, host_source, architectures, (1.0, 1.0), "not validated yet")


def _projected(figure: Figure, static: ShapeStatic, gpu: GPU, model: TimeModel) -> float:
    if figure.kind == "peak_allocated_gib":
        return peak_bytes(static, "all_resident") / GIB
    backend = "compile" if figure.backend.startswith("compile") else "eager"
    projection = project(dataclasses.replace(static, steps=figure.steps), gpu, model, backend)
    if figure.kind == "loop_it_s":
        return 1 / projection.loop_step_s
    return projection.seconds_per_image


def error_of(projected: float, measured: float) -> float:
    """How far off, as a fraction: 0.25 is 1.25x either way."""
    return max(projected / measured, measured / projected) - 1


def validate(
    figures: list[Figure],
    model: TimeModel,
    static_of: StaticOf,
    catalog: dict[str, GPU],
    allocator_rows: list[dict[str, Any]],
) -> dict[str, Any]:
    """Every validation figure beside its projection; the summary the targets are judged on."""
    rows = []
    for figure in figures:
        if figure.role != "validation":
            continue
        static = static_of(figure.shape, figure.resolution, "fp16", False)
        projected = _projected(figure, static, catalog[figure.gpu], model)
        rows.append({**dataclasses.asdict(figure), "projected": projected, "error": error_of(projected, figure.value)})
    rows.extend(allocator_rows)
    timed = [r for r in rows if r["kind"] in ("loop_it_s", "e2e_s")]
    ratios = [
        (r["projected"] / r["value"]) if r["kind"] == "loop_it_s" else (r["value"] / r["projected"]) for r in timed
    ]  # measured seconds over projected seconds
    memory = [r for r in rows if r["kind"] != "loop_it_s" and r["kind"] != "e2e_s"]
    return {
        "rows": rows,
        "time": {
            "n": len(timed),
            "median_error": statistics.median(r["error"] for r in timed),
            "max_error": max(r["error"] for r in timed),
            "band": [min(ratios), max(ratios)],
        },
        "memory": {
            "n": len(memory),
            "median_error": statistics.median(r["error"] for r in memory),
            "max_error": max(r["error"] for r in memory),
        },
    }


def allocator_rows(results: list[ResultFile], static_of: StaticOf) -> list[dict[str, Any]]:
    """Each eager stage's ``torch_allocated_peak_bytes`` in the GPU runs beside the static peak: weights of
    every component (all resident, as the run holds them) plus that stage's traced activations. Those runs
    decoded the VAE in the compute dtype, so the model is asked the same."""
    rows = []
    for result in results:
        path = result.path
        for row in result.rows.values():
            stage = row.stage
            measured = row.memory.figures.torch_allocated_peak_bytes
            key = row.id.as_dict()
            if (
                row.status != "ok"
                or row.device != "cuda"
                or key["backend"] != "eager"
                or not measured
                or stage == "pipeline"
            ):
                continue
            static = static_of(key["shape"], key["resolution"], key["precision"], True)
            projected = static.weight_bytes + static.stages[stage].activation_peak_bytes
            rows.append({
                "id": f"{path.name}:{stage}", "gpu": result.gpu, "shape": key["shape"], "resolution": key["resolution"],
                "steps": key["steps"], "kind": "allocated_peak_gib", "value": measured / GIB, "backend": "eager",
                "role": "validation", "software": "sdshape run (torch allocator peak)", "source": str(path),
                "projected": projected / GIB, "error": error_of(projected, measured),
            })  # fmt: skip
    return rows
