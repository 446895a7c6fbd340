"""``sdshape store add FILES...``: result files into the store, one transaction per file.

A file is identified by the SHA-256 of its bytes: the same file twice adds nothing. It is read and
checked as ``compare`` reads it (a hostile or malformed file is refused with one line, and nothing of
it is stored). Its rows, raw rounds, conditions and full environment then go in within one
transaction, so a process killed mid-ingest leaves the file wholly in the store or not at all.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from sdshape.core.errors import UsageError
from sdshape.result.io import load
from sdshape.store.db import files, rounds, rows, with_retries, writer
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
        raise UsageError(f"{path}: cannot read: {error.strerror or error}") from None
    checked = load(path)  # the same checks as compare: a bad file is one line, and nothing is stored
    document = json.loads(data)
    return with_retries(lambda: _insert(engine, path, content_hash(data), document, checked, document["benchmarks"]))


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
                    path=str(path.resolve()),
                    datetime=document.get("datetime"),
                    host=machine.get("node"),
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
    }
