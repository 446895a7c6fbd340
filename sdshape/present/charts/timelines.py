"""The history report's charts: one PNG per timeline of three runs or more, named after the timeline."""

from __future__ import annotations

from sdshape.regression.history import Timeline
from sdshape.result.output import figure_png, slug


def timeline_charts(timelines: list[Timeline]) -> dict[str, bytes]:
    """One PNG per timeline of three runs or more (timeline name -> its bytes): median time per run, IQR
    bars, events as dotted lines, steps labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn: dict[str, bytes] = {}
    for timeline in (t for t in timelines if len(t.points) >= 3):
        figure, axes = plt.subplots(figsize=(9, 4.2))
        xs = list(range(len(timeline.points)))
        ys = [p.median * 1e3 for p in timeline.points]
        axes.errorbar(xs, ys, yerr=[p.spread * 1e3 / 2 for p in timeline.points], marker="o", capsize=3)
        top = max(ys)
        for event in timeline.events:
            axes.axvline(event.after + 0.5, linestyle=":", color="tab:purple")
            axes.annotate(event.label, (event.after + 0.5, top), rotation=90, fontsize=7, va="top", color="tab:purple")
        for step in timeline.steps:
            color = {"regression": "tab:red", "improvement": "tab:green"}.get(step.verdict, "grey")
            axes.axvline(step.after + 0.5, linestyle="--", color=color)
            axes.annotate(f"{step.verdict} {step.change:+.0%}", (step.after + 0.5, min(ys)), fontsize=7, color=color)
        labels = [p.label for p in timeline.points]
        stride = max(1, len(labels) // 12)
        axes.set_xticks(xs[::stride], labels[::stride], rotation=25, ha="right", fontsize=7)
        axes.set_ylabel("median time per call (ms); bars: IQR")
        axes.set_title(timeline.name, fontsize=9)
        figure.tight_layout()
        drawn[timeline.name] = figure_png(figure)
    return drawn


def chart_file_name(timeline_name: str) -> str:
    """The file a timeline's chart is written to, named after the timeline."""
    return f"{slug(timeline_name)[:120]}.png"
