"""``sdshape store list``'s table: each stored file by its content hash, when it ran, where, and its rows."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def print_stored(listed: list[dict[str, Any]], console: Console) -> None:
    """One line per stored file (``sdshape.store.read.stored_files``'s entries)."""
    table = Table(title=f"{len(listed)} stored files")
    for column in ("hash", "datetime", "host", "rows", "path"):
        table.add_column(column)
    for entry in listed:
        table.add_row(entry["hash"], str(entry["datetime"])[:19], str(entry["host"]), str(entry["rows"]), entry["path"])
    console.print(table)
