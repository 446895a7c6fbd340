"""``sdshape store add FILES...`` and ``sdshape store remove HASH``: result files into the store and
out of it, one transaction per file.

A file is identified by the SHA-256 of its bytes: the same file twice adds nothing. It is read and
checked as ``compare`` reads it (a hostile or malformed file is refused with one line, and nothing of
it is stored). Its rows, raw rounds, conditions and full environment then go in within one
transaction, so a process killed mid-ingest, or a write that fails (a full disk), leaves the file
wholly in the store or not at all. Removing a file takes its rows and rounds with it, also at once.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from sdshape.core.errors import UsageError
from sdshape.result.io import load
from sdshape.store.db import failures, files, name_of, reason, rounds, rows, with_retries, writer
from sdshape.store.location import display
from sdshape.store.read import one_file
from sdshape.store.series import SERIES_FIELDS, digest, row_values


@dataclass(frozen=True)
class Ingested:
    path: Path
    added: bool
    rows: int
    note: str  # what happened, in words


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def add_file(engine: Engine, path: str | Path) -> Ingested:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"{display(path)}: cannot read: {error.strerror or error}") from None
    checked = load(path)  # the same checks as compare: a bad file is one line, and nothing is stored
    document = json.loads(data)
    try:
        return with_retries(
            lambda: _insert(engine, path, content_hash(data), document, checked, document["benchmarks"])
        )
    except (DBAPIError, UnicodeError) as error:  # the transaction was rolled back: nothing of the file is in
        why = f"could not add {display(path)} ({reason(error)}); nothing of it was stored"
        raise UsageError(f"store {name_of(engine)}: {why}") from None


def _text(value: Any) -> Any:
    """Text as a database takes it: characters that are not Unicode (undecodable bytes) escaped."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(value, str) else value


def _insert(engine: Engine, path: Path, hashed: str, document: dict, checked: Any, entries: list) -> Ingested:
    machine = checked.machine_info
    try:
        with writer(engine).begin() as connection:
            found = connection.execute(select(files.c.id).where(files.c.content_hash == hashed)).first()
            if found is not None:
                return Ingested(path, False, 0, f"already in the store (file #{found.id})")
            file_id = connection.execute(
                files.insert().values(
                    content_hash=hashed,
                    path=display(path.resolve()),
                    datetime=_text(document.get("datetime")),
                    host=_text(machine.get("node")),
                    machine_info=machine,
                    options=document.get("options"),
                    ingested_at=time.time(),
                )
            ).inserted_primary_key[0]
            parsed = list(checked.rows.values())
            records = [_row_record(file_id, row, entry, machine) for row, entry in zip(parsed, entries, strict=True)]
            ids = connection.execute(rows.insert().returning(rows.c.id, sort_by_parameter_order=True), records)
            measured = [
                {"row_id": row_id, "idx": index, "seconds": float(seconds)}
                for row_id, row in zip(ids.scalars().all(), parsed, strict=True)
                for index, seconds in enumerate(row.timing.rounds_s)
            ]
            if measured:
                connection.execute(rounds.insert(), measured)
            return Ingested(path, True, len(parsed), f"added {len(parsed)} rows, {len(measured)} rounds")
    except IntegrityError:  # another process added the same file between the check and the insert
        return Ingested(path, False, 0, "already in the store (added by another process just now)")


def _row_record(file_id: int, row: Any, entry: dict, machine: dict) -> dict[str, Any]:
    values = row_values(row, machine)
    stats = entry.get("stats")
    return {
        "file_id": file_id,
        "series": digest(values, SERIES_FIELDS),
        **row.id.as_dict(),
        "status": row.status,
        "median_s": row.median,
        "iqr_s": row.timing.iqr,
        "n_rounds": len(row.timing.rounds_s),
        "methods": row.conditions.methods,
        "backend_options": row.backend.options,
        "extra_info": entry["extra_info"],
        "stats": {key: value for key, value in stats.items() if key != "data"} if isinstance(stats, dict) else None,
        "reference": (row.reference.summary() or None) if row.reference is not None else None,
    }


@dataclass(frozen=True)
class Removed:
    hash: str
    path: str
    rows: int
    rounds: int

    @property
    def note(self) -> str:
        return f"removed {self.hash[:12]} ({self.path}): {self.rows} rows, {self.rounds} rounds"


def remove_file(engine: Engine, reference: str) -> Removed:
    """A stored file, by a content hash prefix (6 or more hex digits) or the path it was ingested from, out
    of the store with its rows and rounds, in one transaction. An unknown or ambiguous reference is a
    one-line usage error, and nothing is removed."""

    def work() -> Removed:
        with writer(engine).begin() as connection:
            file = one_file(connection, reference)
            row_ids = select(rows.c.id).where(rows.c.file_id == file.id)
            counted = select(func.count()).select_from(rounds).where(rounds.c.row_id.in_(row_ids))
            n_rounds = connection.execute(counted).scalar_one()
            held = select(func.count()).select_from(rows).where(rows.c.file_id == file.id)
            n_rows = connection.execute(held).scalar_one()
            connection.execute(delete(rounds).where(rounds.c.row_id.in_(row_ids)))
            connection.execute(delete(rows).where(rows.c.file_id == file.id))
            connection.execute(delete(files).where(files.c.id == file.id))
            return Removed(file.content_hash, file.path, n_rows, n_rounds)

    with failures(engine, f"could not remove {reference}; nothing was removed"):
        return with_retries(work)
