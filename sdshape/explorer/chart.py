"""The explorer's charts and descriptions, read back from a shapes document (no torch needed).

``sdshape report`` draws a saved ``shapes.json`` again from here.
"""

from __future__ import annotations

from typing import Any

from sdshape.core.errors import UsageError
from sdshape.result.output import figure_png, write_output


def pareto_chart(shapes: list[dict[str, Any]], path: Any, conditions: str) -> None:
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
        front = _pareto([(x, y, s["name"]) for x, y, s in zip(xs, ys, points, strict=True)])
        axis.plot([p[0] for p in front], [p[1] for p in front], color="C0", marker="o")
        for x, y, name in front:
            axis.annotate(name.replace("+", "\n"), (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        axis.set_xlabel("parameters (billions)")
        axis.set_ylabel(label)
        axis.set_title(f"{label} vs parameters (line: the Pareto front)", fontsize=9)
    figure.suptitle(conditions, fontsize=8)
    figure.tight_layout()
    write_output(path, figure_png(figure))


def conditions(document: dict[str, Any]) -> str:
    """The measurement conditions of a shapes document, in one line."""
    measured = document.get("measured_conditions") or {}
    return (
        f"{document['resolution']}x{document['resolution']}, {document['steps']} steps, batch 1, CFG; "
        f"{measured.get('backend', '-')} {measured.get('precision', '-')} on {measured.get('device', '-')}, "
        f"{measured.get('rounds', '-')} rounds per component"
    )


def is_shapes_document(document: Any) -> bool:
    return isinstance(document, dict) and "budget" in document and isinstance(document.get("shapes"), list)


def _pareto(points: list[tuple[float, float, Any]]) -> list[tuple[float, float, Any]]:
    """Points not beaten on both axes by another: more parameters for less cost."""
    front = []
    for x, y, c in sorted(points, key=lambda p: (-p[0], p[1])):
        if not front or y < front[-1][1]:
            front.append((x, y, c))
    return sorted(front, key=lambda p: p[0])
