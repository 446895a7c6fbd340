"""The shape explorer's charts, drawn from a shapes document alone (no torch needed), each returned as PNG
bytes for the caller to write.

``sdshape shapes --out`` draws them as it writes ``shapes.json``; ``sdshape report`` draws a saved one again.
"""

from __future__ import annotations

from typing import Any

from sdshape.core.errors import UsageError
from sdshape.result.output import figure_png
from sdshape.shapes.fronts import params_front, pareto_front
from sdshape.shapes.shapes_document import conditions, document_vram


def pareto_chart(shapes: list[dict[str, Any]], caption: str) -> bytes:
    """Parameters against seconds per image and against peak memory; the Pareto front marked.

    ``shapes`` are the rows of a shapes document (``Composition.as_dict``), so a
    saved ``shapes.json`` can be charted again by ``sdshape report``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [s for s in shapes if (s.get("measured") or {}).get("status") == "ok"]
    if not points:
        raise UsageError("no measured composition to chart (run sdshape shapes with --measure)")
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for axis, key, label, scale in (
        (axes[0], "seconds_per_image", "seconds per image", 1.0),
        (axes[1], "peak_bytes", "peak memory (GiB)", 2**30),
    ):
        xs = [s["params"] / 1e9 for s in points]
        ys = [s["measured"][key] / scale for s in points]
        axis.scatter(xs, ys, s=18, color="#888")
        front = params_front([(x, y, s["name"]) for x, y, s in zip(xs, ys, points, strict=True)])
        axis.plot([p[0] for p in front], [p[1] for p in front], color="C0", marker="o")
        for x, y, name in front:
            axis.annotate(name.replace("+", "\n"), (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        axis.set_xlabel("parameters (billions)")
        axis.set_ylabel(label)
        axis.set_title(f"{label} vs parameters (line: the Pareto front)", fontsize=9)
    figure.suptitle(caption, fontsize=8)
    figure.tight_layout()
    return figure_png(figure)


def priced_chart(document: dict[str, Any]) -> bytes:
    """Seconds per image against peak VRAM on each priced card, the Pareto front drawn and the published zoo
    systems among the compositions marked (``sdshape shapes --gpu``; from the document alone)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cards = [card["name"] for card in document["priced_conditions"]["cards"]]
    figure, axes = plt.subplots(1, len(cards), figsize=(6.5 * len(cards), 4.8), squeeze=False)
    for axis, card in zip(axes[0], cards, strict=True):
        points = []
        for shape in document["shapes"]:
            entry = ((shape.get("priced") or {}).get("cards") or {}).get(card) or {}
            if entry.get("seconds_per_image") is not None:
                points.append((entry["peak_bytes"] / 2**30, entry["seconds_per_image"], shape))
        axis.scatter([p[0] for p in points], [p[1] for p in points], s=18, color="#888")
        front = pareto_front(points)
        axis.plot([p[0] for p in front], [p[1] for p in front], color="C0", marker="o", label="Pareto front")
        for x, y, shape in front:
            axis.annotate(
                shape["name"].replace("+", "\n"), (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points"
            )
        zoo = [p for p in points if p[2]["priced"]["zoo"]]
        if zoo:
            axis.scatter([p[0] for p in zoo], [p[1] for p in zoo], s=90, marker="*", color="C3", label="zoo system")
            for x, y, shape in zoo:
                axis.annotate(shape["priced"]["zoo"], (x, y), fontsize=8, color="C3", xytext=(4, -10),
                              textcoords="offset points")  # fmt: skip
        axis.axvline(document_vram(document, card) / 2**30, color="#c44", linestyle=":", label="card memory")
        axis.set_xlabel("peak VRAM under the chosen policy (GiB)")
        axis.set_ylabel("seconds per image (model)")
        axis.set_title(f"{card}: seconds per image vs peak VRAM", fontsize=9)
        axis.legend(fontsize=7)
    c = document["priced_conditions"]
    figure.suptitle(
        f"{document['resolution']}x{document['resolution']}, {document['steps']} steps, batch 1, CFG; "
        f"{c['precision']}, {c['backend']}; static model, not measurement",
        fontsize=8,
    )
    figure.tight_layout()
    return figure_png(figure)


def beside_chart(document: dict[str, Any]) -> bytes:
    """Per measured composition, the model's seconds (its band as the bar) and all-resident peak beside the
    measured ones (``sdshape shapes --gpu CARD --measure``; from the document alone). Seconds on a log scale: a
    CPU's beside a card's model differ by orders of magnitude, and the title says when they are not comparable.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [(s["name"], s["measured"]["against_model"]) for s in document["shapes"]
             if (s.get("measured") or {}).get("against_model")]  # fmt: skip
    comparison = document["comparison"]
    figure, axes = plt.subplots(1, 2, figsize=(12, 1.6 + 0.5 * len(pairs)), squeeze=False)
    ys = list(range(len(pairs)))
    seconds, memory = axes[0]
    for y, (_, pair) in zip(ys, pairs, strict=True):
        model, band = pair["model_seconds_per_image"], pair["model_band"]
        seconds.errorbar(model, y + 0.15, xerr=[[model - band[0]], [band[1] - model]], fmt="o", color="C0",
                         capsize=3, label="model (band)" if y == 0 else None)  # fmt: skip
        if pair["measured_seconds_per_image"] is not None:
            half = pair["measured_ci_s"] or 0.0
            seconds.errorbar(pair["measured_seconds_per_image"], y - 0.15, xerr=half, fmt="s", color="C3", capsize=3,
                             label="measured (95% CI)" if y == 0 else None)  # fmt: skip
        memory.scatter(pair["model_peak_bytes_all_resident"] / 2**20, y + 0.15, marker="o", color="C0",
                       label="model, all resident" if y == 0 else None)  # fmt: skip
        if pair["measured_peak_bytes"] is not None:
            memory.scatter(pair["measured_peak_bytes"] / 2**20, y - 0.15, marker="s", color="C3",
                           label="measured" if y == 0 else None)  # fmt: skip
    seconds.set_xscale("log")
    memory.set_xlim(left=0)
    for axis, label in ((seconds, "seconds per image (log)"), (memory, "peak (MiB)")):
        axis.set_yticks(ys, [name.replace("+", "\n") for name, _ in pairs], fontsize=6)
        axis.set_ylim(len(pairs) - 0.5, -0.5)  # the first composition on top
        axis.set_xlabel(label)
        axis.legend(fontsize=7)
    measured = document["measured_conditions"]
    figure.suptitle(
        f"{comparison['statement']}\n{document['resolution']}x{document['resolution']}, {document['steps']} steps, "
        f"batch 1, CFG; model {comparison['model_backend']} {document['priced_conditions']['precision']}, measured "
        f"{measured['backend']} {measured['precision']}",
        fontsize=8,
    )
    figure.tight_layout()
    return figure_png(figure)


def pareto_png(document: dict[str, Any]) -> bytes:
    """A shapes document's Pareto chart, captioned with its conditions."""
    return pareto_chart(document["shapes"], conditions(document))
