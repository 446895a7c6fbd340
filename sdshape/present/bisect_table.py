"""The table ``sdshape bisect`` ends with: each release between good and bad, its verdict and what it cost,
then the first bad release (``sdshape.cli.bisect`` runs the search and writes bisect.json)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def print_bisect(report: dict[str, Any], console: Console) -> None:
    """Every release in order (untested ones say so), then the answer and the wall time."""
    table = Table(title=f"bisect {report['package']} {report['good']} -> {report['bad']}", title_justify="left")
    for column in ("release", "verdict", "runs", "largest time change", "environment s", "runs s"):
        table.add_column(column)
    for version in report["releases"]:
        entry = report["tested"].get(version)
        if entry is None:
            table.add_row(version, "not tested", "", "", "", "")
            continue
        change = entry.get("largest_time_change")
        table.add_row(
            version, entry["verdict"], str(len(entry["runs"])), "" if change is None else f"{change:+.1%}",
            str(entry.get("environment_s", "")), str(entry.get("runs_s", "")),
        )  # fmt: skip
    console.print(table)
    first = report["first_bad"]
    line = f"first bad release: {report['package']} {first}" if first else "no single first bad release"
    console.print(f"{line}: {report['note']} ({report['wall_s']:.0f} s in all)", highlight=False)
