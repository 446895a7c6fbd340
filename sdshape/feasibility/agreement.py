"""How far the model is from each validation figure, and the per-class summary the targets are judged on.

A figure's class follows its conditions (``offload`` when a policy moves weights, ``format`` when the weights
are quantized, ``batch`` when a call makes more than one image, else ``resident``; a figure can be in two).
Memory figures whose counter is not stated are checked as a range, not held to the target.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

from sdshape.core.units import GIB
from sdshape.feasibility.calibration import CONTEXT_GIB, Conditions, StaticOf, projected_value
from sdshape.feasibility.catalog import GPU
from sdshape.feasibility.figures import Figure
from sdshape.feasibility.formats import FORMATS
from sdshape.feasibility.time_model import CLASSES, TimeModel, classes_of
from sdshape.result.io import ResultFile


def error_of(projected: float, measured: float) -> float:
    """How far off, as a fraction: 0.25 is 1.25x either way."""
    return max(projected / measured, measured / projected) - 1


def figure_class(figure: Figure) -> tuple[str, ...]:
    return classes_of(FORMATS[figure.precision], figure.policy, figure.batch)


def validate(
    figures: list[Figure],
    model: TimeModel,
    static_of: StaticOf,
    catalog: dict[str, GPU],
    allocator_rows: list[dict[str, Any]],
) -> dict[str, Any]:
    """Every validation figure beside its projection, and per class the summary the targets are judged on."""
    rows = []
    for figure in figures:
        if figure.role != "validation":
            continue
        projected = projected_value(figure, model, static_of, catalog)
        row = {**dataclasses.asdict(figure), "classes": list(figure_class(figure)), "projected": projected}
        if figure.kind == "oom":
            row["error"] = 0.0 if projected == 1.0 else float("inf")
        elif figure.kind in ("peak_gib", "weights_gib") and figure.counter != "allocated":
            # A reserved or unstated counter holds the context and the allocator's slack: the figure must lie
            # between the allocated projection and that plus the context and a quarter more.
            high = (projected + CONTEXT_GIB) * 1.25
            row["range"] = [projected, high]
            row["error"] = 0.0 if projected <= figure.value <= high else error_of(projected, figure.value)
        else:
            row["error"] = error_of(projected, figure.value)
        rows.append(row)
    for row in allocator_rows:
        rows.append({**row, "classes": ["resident"]})
    return {"rows": rows, "classes": summarize(rows)}


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per class: time figures' median and largest error and band; memory figures with a known counter; OOMs."""
    summary = {}
    for name in CLASSES:
        mine = [r for r in rows if name in r["classes"]]
        timed = [r for r in mine if r["kind"] in ("loop_it_s", "e2e_s")]
        ratios = [
            (r["projected"] / r["value"]) if r["kind"] == "loop_it_s" else (r["value"] / r["projected"]) for r in timed
        ]  # measured seconds over projected seconds
        memory = [
            r for r in mine if r["kind"] in ("peak_gib", "peak_allocated_gib", "allocated_peak_gib", "weights_gib")
        ]
        known = [r for r in memory if r.get("counter", "allocated") == "allocated"]
        ranged = [r for r in mine if r["kind"] in ("peak_gib", "weights_gib") and r.get("counter") != "allocated"]
        ooms = [r for r in mine if r["kind"] == "oom"]
        summary[name] = {
            "time_n": len(timed),
            "time_median_error": statistics.median(r["error"] for r in timed) if timed else None,
            "time_max_error": max(r["error"] for r in timed) if timed else None,
            "band": [min(1.0, *ratios), max(1.0, *ratios)] if ratios else None,  # the projection lies within its band
            "memory_n": len(known),
            "memory_max_error": max(r["error"] for r in known) if known else None,
            "memory_median_error": statistics.median(r["error"] for r in known) if known else None,
            "ranged_n": len(ranged),
            "ranged_outside": sum(1 for r in ranged if r["error"] > 0),
            "oom_n": len(ooms),
            "oom_missed": sum(1 for r in ooms if r["error"] > 0),
        }
    return summary


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
            static = static_of(Conditions(key["shape"], key["resolution"], key["precision"], vae_fp16=True))
            projected = static.weight_bytes + static.stages[stage].activation_peak_bytes
            rows.append({
                "id": f"{path.name}:{stage}", "gpu": result.gpu, "shape": key["shape"], "resolution": key["resolution"],
                "steps": key["steps"], "kind": "allocated_peak_gib", "value": measured / GIB, "backend": "eager",
                "role": "validation", "software": "sdshape run (torch allocator peak)", "source": str(path),
                "counter": "allocated", "projected": projected / GIB, "error": error_of(projected, measured),
            })  # fmt: skip
    return rows
