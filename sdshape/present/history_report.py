"""The history report: a table of every timeline's steps and their causes, and one chart per timeline
with its events marked (``history.md`` and PNGs in ``--out``; the charts drawn by
``sdshape.present.charts.timelines``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sdshape.present.charts.timelines import chart_file_name, timeline_charts
from sdshape.regression.history import MIN_RUNS_AFTER, Z_MIN, Timeline, throttled_note
from sdshape.result.output import folder_target, make_folder, write_output
from sdshape.store.series import SeriesKey


def step_text(timeline: Timeline) -> str:
    parts = []
    for step in timeline.steps:
        where = f"after {timeline.points[step.after].label}"
        cause = f", at {step.cause}" if step.cause else ""
        shared = f" (the event's effect: {step.shared_with + 1} machines step there)" if step.shared_with else ""
        reference = f"; reference: {step.attribution.text}" if step.attribution else ""
        parts.append(
            f"{step.verdict} {step.change:+.1%} {where}{cause}{shared}; {step.why} (z = {step.z:.1f}){reference}"
        )
    return "<br>".join(parts) or "none"


def throttled_lines(timelines: list[Timeline]) -> list[str]:
    """Each run left out of step detection for being throttled, under the count (none: nothing)."""
    note = throttled_note(timelines)
    if note is None:
        return []
    runs = [f"- {t.name}: {p.label}: {p.throttled}" for t in timelines for p in t.throttled]
    return ["", f"{note}:", *runs]


def markdown(
    timelines: list[Timeline], key: SeriesKey, charts: dict[str, Path], skipped: list[str], floor: float
) -> str:
    lines = [
        "# sdshape history",
        "",
        f"Timelines: the {key.describe()}. Points are runs in time order; a step needs z >= {Z_MIN:g}, at "
        f"least {floor:.0%}, and {MIN_RUNS_AFTER} runs after it before it is a regression. Each timeline's "
        "run-to-run sigma is the larger of the floor and its own successive differences'. Each step names "
        "whose it is by the reference workload recorded in every run (a fixed GEMM and copies): machine/driver "
        "when it moved with the model beyond its own noise, software when only the model moved.",
        "",
        "| timeline | runs | run-to-run | first | last | events | steps |",
        "|---|---|---|---|---|---|---|",
    ]
    for timeline in timelines:
        ends = (timeline.points[0], timeline.points[-1]) if timeline.points else ()  # all throttled: no point
        first, last = (f"{p.median * 1e3:.1f} ms" for p in ends) if ends else ("-", "-")
        events = "<br>".join(f"{e.label} (after {timeline.points[e.after].label})" for e in timeline.events) or "-"
        runs = f"{len(timeline.points)}" + (f" (+{len(timeline.throttled)} throttled)" if timeline.throttled else "")
        lines.append(
            f"| {timeline.name} | {runs} | {timeline.run_to_run:.1%} | {first} | {last} | {events} | "
            f"{step_text(timeline)} |"
        )
    for title, chart in charts.items():
        lines += ["", f"![{title}]({chart.name})"]
    lines += throttled_lines(timelines)
    if skipped:
        lines += ["", "Skipped files:", *(f"- {note}" for note in skipped)]
    return "\n".join(lines) + "\n"


def write_report(timelines: list[Timeline], key: SeriesKey, out: Path, skipped: list[str], floor: float) -> Path:
    out = make_folder(folder_target(out, "--out"))
    drawn = {name: write_output(out / chart_file_name(name), png) for name, png in timeline_charts(timelines).items()}
    return write_output(out / "history.md", markdown(timelines, key, drawn, skipped, floor))


def print_history(timelines: list[Timeline], key: Any, console: Console) -> None:
    """The terminal summary: each timeline with a step or an event, its runs, events and steps."""
    table = Table(title=f"history: {len(timelines)} timelines ({key.describe()})", title_justify="left")
    for column in ("timeline", "runs", "events", "steps"):
        table.add_column(column)
    for timeline in timelines:
        if timeline.steps or timeline.events:
            table.add_row(timeline.name, str(len(timeline.points)), str(len(timeline.events)), step_text(timeline))
    console.print(table)
