"""The tables of ``inspect --all --quality`` in the terminal: cost beside quality, the text-encoder share beside
quality, the published ablations, and every figure's source (the rows are ``sdshape.feasibility.quality_field``'s,
which the report's section and quality.md use too, so all three agree)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sdshape.feasibility.quality_field import (
    ABLATION_COLUMNS,
    COST_COLUMNS,
    READING,
    SHARE_COLUMNS,
    ablation_rows,
    conditions_line,
    cost_rows,
    figure_lines,
    share_rows,
)


def _table(title: str, columns: tuple[str, ...], rows: list[list[str]], caption: str | None = None) -> Table:
    table = Table(title=escape(title), caption=escape(caption) if caption else None)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    return table


def print_quality(document: dict[str, Any], console: Console) -> None:
    """The three tables and the numbered list of figures with their sources."""
    c = document["conditions"]
    console.print(_table(f"published quality beside cost on {c['card']}", COST_COLUMNS, cost_rows(document),
                         caption=f"{conditions_line(document)}. [n]: the figures listed below."))  # fmt: skip
    console.print(_table(f"text-encoder share (params; stored {c['precision']} bytes) beside quality",
                         SHARE_COLUMNS, share_rows(document)))  # fmt: skip
    console.print(_table("the controlled evidence: published ablations", ABLATION_COLUMNS, ablation_rows(document)))
    console.print(READING, highlight=False)
    console.print("figures:", highlight=False)
    for line in figure_lines(document):
        console.print(escape(f"  {line}"), highlight=False, soft_wrap=True)
