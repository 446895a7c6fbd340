"""A run's charts in the report: every stage's share of parameters, time, memory and energy; each stage's kernel
classes."""

from __future__ import annotations

from sdshape.core.vocabulary import PER_IMAGE_STAGES as STAGES
from sdshape.result.output import figure_png


def share_chart(title: str, shares: dict[str, dict[str, float | None]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [
        ("params", "parameters"),
        ("time", "time"),
        ("memory", "memory (weights + activations)"),
        ("energy", "energy"),
    ]
    present = [(key, label) for key, label in metrics if all(shares[s][key] is not None for s in STAGES)]
    figure, axes = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / len(present)
    for index, (key, label) in enumerate(present):
        xs = [i + (index - (len(present) - 1) / 2) * width for i in range(len(STAGES))]
        values = [100 * shares[s][key] for s in STAGES]
        bars = axes.bar(xs, values, width, label=label)
        axes.bar_label(bars, fmt="%.0f%%", fontsize=7)
    axes.set_xticks(range(len(STAGES)), STAGES)
    axes.set_ylabel("share of the image's total (%)")
    axes.set_ylim(0, 110)
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8)
    missing = [label for key, label in metrics if (key, label) not in present]
    if missing:
        axes.text(
            0.99,
            0.97,
            "not measured here: " + ", ".join(missing),
            transform=axes.transAxes,
            ha="right",
            va="top",
            fontsize=7,
            color="grey",
        )
    figure.tight_layout()
    return figure_png(figure)


def kernel_chart(bars: list[tuple[str, dict[str, float]]]) -> bytes:
    """One stacked bar per (stage, backend, conditions): each kernel class's share of the stage's kernel time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sdshape.measurement.profiling import CLASSES

    figure, axes = plt.subplots(figsize=(9, 0.45 * len(bars) + 1.6))
    left = [0.0] * len(bars)
    labels = [label for label, _ in bars]
    for kind in CLASSES:
        widths = [100 * shares.get(kind, 0.0) for _, shares in bars]
        drawn = axes.barh(labels, widths, left=left, label=kind)
        axes.bar_label(drawn, labels=[f"{w:.0f}%" if w >= 6 else "" for w in widths], label_type="center", fontsize=7)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    axes.set_xlim(0, 100)
    axes.set_xlabel("share of the stage's kernel time (%)")
    axes.invert_yaxis()
    axes.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    axes.set_title("where in each stage the time goes, by kernel class (one profiled round)", fontsize=10)
    figure.tight_layout()
    return figure_png(figure)
