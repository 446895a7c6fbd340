"""The field's published quality against its cost on one card, the Pareto front drawn, each system labelled.

One row of panels per metric with at least two systems that fit the card (GenEval overall, DPG-Bench; COCO
FID-30K, lower is better, where two systems have it), against peak VRAM under the chosen policy and against
seconds per image (with the band its validation found as a horizontal bar). Torch-free: drawn from a
``quality_field.quality_document``, live (``inspect --all --quality --out``) or committed (``sdshape report``).
"""

from __future__ import annotations

import textwrap
from typing import Any

from sdshape.feasibility.quality_field import COSTS, conditions_line, points_for, quality_front
from sdshape.result.output import figure_png


def charted_metrics(document: dict[str, Any]) -> list[str]:
    """The metrics with a score for at least two systems that fit the card: one point draws no front."""
    found = []
    for metric in document["metrics"]:
        systems = {p[2] for p in points_for(document["systems"], metric, "peak_bytes")}
        if len(systems) >= 2:
            found.append(metric)
    return found


def _bands(document: dict[str, Any], points: list[tuple]) -> tuple[list[float], list[float]]:
    """Each point's seconds band as (below, above) distances for ``errorbar``'s ``xerr``."""
    by_name = {s["system"]: s["cost"]["seconds_band"] for s in document["systems"]}
    below = [x - by_name[name][0] for x, _, name in points]
    above = [by_name[name][1] - x for x, _, name in points]
    return below, above


def _plain_ticks(axis: Any, xs: list[float]) -> None:
    """Log-scale ticks as plain numbers; the minor ones labelled too when the points span under a decade."""
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axis.xaxis.set_major_formatter(plain)
    narrow = bool(xs) and max(xs) < 10 * min(xs)
    axis.xaxis.set_minor_formatter(plain if narrow else FuncFormatter(lambda value, _: ""))


def quality_png(document: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = charted_metrics(document)
    figure, axes = plt.subplots(len(metrics), 2, figsize=(12, 4.2 * len(metrics)), squeeze=False)
    card = document["conditions"]["card"]
    for row, metric in zip(axes, metrics, strict=True):
        info = document["metrics"][metric]
        direction = "higher is better" if info["higher_is_better"] else "lower is better"
        for axis, (key, label, scale) in zip(row, COSTS, strict=True):
            points = points_for(document["systems"], metric, key, scale)
            if key == "seconds_per_image":
                axis.errorbar([p[0] for p in points], [p[1] for p in points], xerr=_bands(document, points),
                              fmt="none", ecolor="#bbb", elinewidth=1, capsize=2, label="validation band")  # fmt: skip
            axis.scatter([p[0] for p in points], [p[1] for p in points], s=22, color="#666", zorder=3)
            front = quality_front(points, info["higher_is_better"])
            axis.plot([p[0] for p in front], [p[1] for p in front], color="C0", marker="o", zorder=4,
                      label="Pareto front")  # fmt: skip
            for x, y, name in points:
                axis.annotate(name, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
            if key == "seconds_per_image":
                axis.set_xscale("log")  # 1 s to 100 s: the resident systems and the offloaded ones
                _plain_ticks(axis, [p[0] for p in points])
            if not info["higher_is_better"]:
                axis.invert_yaxis()  # better is up in every panel
            if key == "peak_bytes":
                vram = document["conditions"]["vram_bytes"] / scale
                axis.axvline(vram, color="#c44", linestyle=":", label="card memory")
            axis.set_xlabel(f"{label} on {card} (model{', log scale' if key == 'seconds_per_image' else ''})")
            axis.set_ylabel(f"{info['label']} ({direction})")
            axis.set_title(f"{info['label']} vs {label}", fontsize=9)
            axis.legend(fontsize=7)
    title = (
        f"Published quality against modelled cost: {conditions_line(document)}. Correlation across systems "
        "trained differently, not a controlled ablation; quality figures from their sources (quality.toml)."
    )
    figure.suptitle(textwrap.fill(title, 150), fontsize=8)
    figure.tight_layout()
    return figure_png(figure)
