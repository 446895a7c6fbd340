"""The compare verdict table: grouped as the user reads it, worst news first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from sdshape.core import units
from sdshape.core.vocabulary import ID_FIELDS
from sdshape.result.io import ResultFile
from sdshape.result.rules import CAUSES

if TYPE_CHECKING:
    from sdshape.regression.compare import Verdict

GROUPS = (
    ("status_change", "status changes"),
    ("regression", "regressions"),
    ("improvement", "improvements"),
    ("undecided", "undecided (too few rounds or no raw data)"),
    ("method_changed", "method changed (measured differently: not comparable)"),
    ("unchanged", "unchanged"),
    ("only_base", "only in BASE"),
    ("only_new", "only in NEW"),
)


def _value(metric: str | None, value: Any) -> str:
    if value is None:
        return "-"
    if metric == "time":
        return units.seconds(value)
    if metric == "memory":
        return units.size(value)
    if metric == "energy":
        return f"{value:.2f} J"
    return str(value)


def print_verdicts(
    results: list[Verdict],
    environment: list[dict[str, Any]],
    base: ResultFile,
    new: ResultFile,
    console: Console,
) -> None:
    console.print(f"BASE {base.path} ({base.gpu})\nNEW  {new.path} ({new.gpu})", highlight=False)
    if environment:
        env = Table(title="environment differences (the likely causes)")
        for column in ("field", "base", "new"):
            env.add_column(column)
        for row in environment:
            env.add_row(row["field"], str(row["base"]), str(row["new"]))
        console.print(env)
    else:
        console.print("environment: no fingerprint field differs", highlight=False)
    for verdict, title in GROUPS:
        rows = [r for r in results if r.verdict == verdict]
        if not rows:
            continue
        table = Table(title=f"{title} ({len(rows)})", title_justify="left")
        for column in (*ID_FIELDS, "metric", "base", "new", "change", "p", "why"):
            table.add_column(column, justify="right" if column in ("base", "new", "change", "p") else "left")
        for r in rows:
            change = r.change
            table.add_row(
                *(str(r.id[field]) for field in ID_FIELDS),
                r.metric or "-",
                _value(r.metric, r.base),
                _value(r.metric, r.new),
                f"{change:+.1%}" if isinstance(change, (int, float)) else "-",
                f"{r.p_value:.3g}" if r.p_value is not None else "-",
                str(r.reason or "") + "".join(f" [red]({side})[/red]" for side in r.throttled),
            )
        console.print(table)
    timed = [r.metrics["time"] for r in results if "time" in r.metrics]
    if timed and all(m.run_to_run is None for m in timed):
        console.print(
            "note: time verdicts from the rounds alone; rounds within one process cannot see how far another "
            "process's level lands (an A/A test on a shared 2-core CPU called 35% of pairs regressions this way). "
            "With --store (5+ runs of the series) or --run-to-run, a change must also clear the run-to-run noise.",
            highlight=False,
        )
    _say_unjudged_memory(results, console)
    _say_throttled(results, console)
    summary = {verdict: sum(r.verdict == verdict for r in results) for verdict, _ in GROUPS}
    console.print("summary: " + ", ".join(f"{k} {v}" for k, v in summary.items() if v), highlight=False)


def _say_unjudged_memory(results: list[Verdict], console: Console) -> None:
    """Ids whose memory was not compared because a figure broke a rule (a negative peak, say): said, not
    left out of the table in silence."""
    unjudged = [
        m for r in results if (m := r.metrics.get("memory")) is not None and m.flagged and None in (m.base, m.new)
    ]
    if unjudged:
        first = unjudged[0].flagged[0].replace(f" ({CAUSES})", "")
        console.print(
            f"memory not compared for {len(unjudged)} of {len(results)} ids: a figure broke a rule and no other "
            f"stands in ({first})",
            highlight=False,
            soft_wrap=True,
        )


def _say_throttled(results: list[Verdict], console: Console) -> None:
    """Ids where either side was timed under a power or thermal slowdown: their time verdicts stand, with
    the reason to doubt them said beside."""
    throttled = [r for r in results if r.throttled]
    if throttled:
        first = f"{throttled[0].id.get('stage')}: {throttled[0].throttled[0]}"
        console.print(
            f"throttled: {len(throttled)} of {len(results)} ids were timed while a GPU was throttled on one side "
            f"or both ({first}); their time verdicts are as judged, but part of a change may be the GPU's power "
            "or temperature, not the code",
            highlight=False,
            soft_wrap=True,
        )
