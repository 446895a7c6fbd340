"""Quality against cost across the field: each system's published scores beside what it costs on a card.

Joins three things, none of them computed here: the field rows (``sdshape inspect --all``: parameters and their
shares), the static model's answer on one card (``field_cost``: stored bytes, the policy that fits, peak VRAM,
seconds per image with its band) and the published figures (``quality.toml``). A missing score stays missing:
its cell says "no published figure", never an estimate. Torch-free, so ``sdshape report`` builds the same
document from the committed ``field.json`` and ``field_cost.json``.

What the document can say: the systems differ in training data, captions, compute, resolution and sampler, not
only in how their parameters are split, so a link between a score and a cost here is a correlation across the
field. The controlled evidence is the ablations (Imagen's encoder and U-Net scaling, SD3's with and without
T5 and its depth scaling), carried beside the table.
"""

from __future__ import annotations

from typing import Any

from sdshape.core import units
from sdshape.feasibility.quality import METRICS, QualityData

NO_FIGURE = "no published figure"
READING = (
    "Correlation across the field, not a controlled ablation: these systems differ in training data, captions, "
    "compute, resolution and sampler, not only in how they split their parameters. The controlled evidence is "
    "the ablations (Imagen: text-encoder and U-Net scaling; SD3: without T5, and depth scaling)."
)
COSTS = (("peak_bytes", "peak VRAM (GiB)", 2**30), ("seconds_per_image", "seconds per image", 1.0))


def quality_front(points: list[tuple[float, float, Any]], higher_is_better: bool = True) -> list[tuple]:
    """The points no other point beats: none costs as little or less *and* scores as well or better, with one
    of the two strictly. ``points``: (cost, score, label); the front comes back by cost."""
    sign = 1.0 if higher_is_better else -1.0
    front: list[tuple[float, float, Any]] = []
    for cost, score, label in sorted(points, key=lambda p: (p[0], -sign * p[1])):
        if not front or sign * score > sign * front[-1][1]:
            front.append((cost, score, label))
    return front


def _cell(figures: list[dict[str, Any]], metric: str) -> str:
    """The distinct values one system has for ``metric``, each with the numbers of the figures that give it."""
    found: dict[float, list[int]] = {}
    for figure in figures:
        if figure["metric"] == metric:
            found.setdefault(figure["value"], []).append(figure["number"])
    if not found:
        return NO_FIGURE
    shown = METRICS[metric].shown
    return " / ".join(f"{shown(value)} [{', '.join(map(str, numbers))}]" for value, numbers in sorted(found.items()))


QUALITY_KEYS = ("metric", "value", "source", "url", "measured_by", "conditions", "note", "number")


def _system(row: dict[str, Any], cost: dict[str, Any], figures: list[dict[str, Any]]) -> dict[str, Any]:
    """One system: its counts, its stored bytes and the text encoder's share of both, its cost on the card, its
    figures as a list and as table cells."""
    stored = cost["weight_bytes"]
    return {
        "system": row["shape"],
        "year": row["year"],
        "resolution": row["resolution"],
        "steps": row["steps"],
        "guidance": row["guidance"],
        "params": sum(row["params"].values()),
        "text_encoder_params": row["params"]["text_encoder"],
        "text_encoder_param_share": row["param_share"]["text_encoder"],
        "weight_bytes": sum(stored.values()),
        "text_encoder_bytes": stored["text_encoder"],
        "text_encoder_byte_share": stored["text_encoder"] / sum(stored.values()),
        "cost": {k: v for k, v in cost.items() if k != "weight_bytes"},
        "quality": [{k: f[k] for k in QUALITY_KEYS} for f in figures],
        "quality_cells": {metric: _cell(figures, metric) for metric in METRICS},
    }


def _fronts(systems: list[dict[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """Per metric and cost, the systems on the Pareto front (a system with two scores may appear twice)."""
    fronts: dict[str, dict[str, list[str]]] = {}
    for metric in METRICS:
        better = METRICS[metric].higher_is_better
        fronts[metric] = {key: [p[2] for p in quality_front(points_for(systems, metric, key), better)]
                          for key, _, _ in COSTS}  # fmt: skip
    return fronts


def quality_document(field_rows: list[dict[str, Any]], costs: dict[str, Any], data: QualityData) -> dict[str, Any]:
    """One row per system (its figures as a ``quality`` list and as table cells, its cost on the card), the
    ablations, the figures numbered with their sources and, per metric and cost, the systems on the Pareto front."""
    numbered = [{"number": n, **f.as_dict()} for n, f in enumerate(data.figures, start=1)]
    systems = [
        _system(row, costs["systems"][row["shape"]], [f for f in numbered if f["system"] == row["shape"]])
        for row in field_rows
    ]
    return {
        "reading": READING,
        "conditions": {k: v for k, v in costs.items() if k != "systems"},
        "metrics": {m.name: {"label": m.label, "higher_is_better": m.higher_is_better} for m in METRICS.values()},
        "systems": systems,
        "figures": numbered,
        "ablations": [a.as_dict() for a in data.ablations],
        "pareto": _fronts(systems),
    }


def points_for(systems: list[dict[str, Any]], metric: str, cost_key: str, scale: float = 1.0) -> list[tuple]:
    """(cost, score, system) for every distinct published score of a system that fits the card."""
    points = []
    for system in systems:
        cost = system["cost"].get(cost_key)
        if cost is None:
            continue
        for value in sorted({f["value"] for f in system["quality"] if f["metric"] == metric}):
            points.append((cost / scale, value, system["system"]))
    return points


def conditions_line(document: dict[str, Any]) -> str:
    c = document["conditions"]
    return (
        f"{c['card']} ({units.size(c['vram_bytes'])}), {c['precision']}, {c['backend']} on a {c['host']} host, "
        f"batch {c['batch']}, each pipeline's own resolution and steps; least intrusive policy that fits "
        f"(peak + {units.size(c['context_bytes'])} CUDA context within the card); static model, not measurement"
    )


def _policy(cost: dict[str, Any]) -> str:
    if not cost["supported"]:
        return "unsupported"
    if not cost["fits"]:
        return "does not fit"
    return cost["policy"] + (" +vae tiling" if cost["vae_tiling"] else "")


COST_COLUMNS = ("system", "params", "stored weights", "policy", "peak VRAM", "s/image", "band",
                *(m.label for m in METRICS.values()))  # fmt: skip
SHARE_COLUMNS = ("system", "text-encoder params", "TE share of params", "TE share of bytes",
                 *(m.label for m in METRICS.values()))  # fmt: skip
ABLATION_COLUMNS = ("study", "variable", "published numbers", "finding", "source", "note")


def cost_rows(document: dict[str, Any]) -> list[list[str]]:
    """The quality-against-cost table's cells, the same for the terminal, quality.md and the report."""
    rows = []
    for s in document["systems"]:
        cost, band = s["cost"], s["cost"]["seconds_band"]
        seconds = cost["seconds_per_image"]
        rows.append([
            s["system"], units.count(s["params"]), units.size(s["weight_bytes"]), _policy(cost),
            units.size(cost["peak_bytes"]), f"{seconds:.2f}" if seconds is not None else "-",
            f"{band[0]:.2f}-{band[1]:.2f}" if band else "-", *s["quality_cells"].values(),
        ])  # fmt: skip
    return rows


def share_rows(document: dict[str, Any]) -> list[list[str]]:
    """Each system's text-encoder share of parameters and of stored bytes, beside its scores."""
    return [
        [s["system"], units.count(s["text_encoder_params"]), units.share(s["text_encoder_param_share"]),
         units.share(s["text_encoder_byte_share"]), *s["quality_cells"].values()]
        for s in document["systems"]
    ]  # fmt: skip


def ablation_rows(document: dict[str, Any]) -> list[list[str]]:
    rows = []
    for a in document["ablations"]:
        points = "; ".join(f"{p['setting']}: {p['metric']} {p['value']:g}" for p in a["points"])
        rows.append([a["study"], a["variable"], points or "none recorded (the note says why)", a["finding"],
                     a["source"], a["note"]])  # fmt: skip
    return rows


def figure_lines(document: dict[str, Any]) -> list[str]:
    """Every figure with its number (the table's [n]), source, who measured it, the conditions and the file's
    note (which says, for one, that the FID checkpoint is not the one priced)."""
    lines = []
    for f in document["figures"]:
        metric = METRICS[f["metric"]]
        line = (f"[{f['number']}] {f['system']} {metric.label} {metric.shown(f['value'])}: {f['source']}; {f['url']}. "
                f"By: {f['measured_by']}. Conditions: {f['conditions']}.")  # fmt: skip
        lines.append(line + (f" Note: {f['note']}" if f["note"] else ""))
    return lines


def committed_rows() -> list[dict[str, Any]]:
    """The field table as committed beside the code (``sdshape inspect --all --json``), so the report needs no
    torch."""
    import json
    from importlib import resources

    return json.loads(resources.files("sdshape.data").joinpath("field.json").read_text())


def committed_costs() -> dict[str, Any]:
    """The default card's costs as committed (``python maintainer/field_cost.py``), so the report needs no torch."""
    import json
    from importlib import resources

    return json.loads(resources.files("sdshape.data").joinpath("field_cost.json").read_text())
