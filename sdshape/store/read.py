"""Result files back out of the store, as the same :class:`~sdshape.result.io.ResultFile` objects a
file reader makes, so ``compare``, ``history`` and ``report`` run unchanged on either."""

from __future__ import annotations

from array import array
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, or_, select

from sdshape.core.errors import UsageError
from sdshape.core.vocabulary import ID_FIELDS
from sdshape.result.io import ResultFile
from sdshape.result.model import StageResult
from sdshape.store.db import files, rounds, rows


def result_files(engine: Engine, file_ids: list[int] | None = None) -> list[ResultFile]:
    """Every stored file (or those named), oldest ingested first, rows and rounds included."""
    with engine.connect() as connection:
        query = select(files).order_by(files.c.id)
        if file_ids is not None:
            query = query.where(files.c.id.in_(file_ids))
        stored = connection.execute(query).all()
        wanted = [f.id for f in stored]
        row_query = select(rows).where(rows.c.file_id.in_(wanted)).order_by(rows.c.id)
        stored_rows = connection.execute(row_query).all()
        taken: dict[int, list[float]] = defaultdict(list)
        round_query = (
            select(rounds.c.row_id, rounds.c.seconds)
            .join(rows, rows.c.id == rounds.c.row_id)
            .where(rows.c.file_id.in_(wanted))
            .order_by(rounds.c.row_id, rounds.c.idx)
        )
        for row_id, seconds in connection.execute(round_query):
            taken[row_id].append(seconds)
    by_file: dict[int, dict[tuple, StageResult]] = defaultdict(dict)
    for row in stored_rows:
        stats = dict(row.stats) if row.stats is not None else None
        if stats is not None:
            stats["data"] = array("d", taken.get(row.id, []))
        result = StageResult.from_extra_info(dict(row.extra_info), stats)
        by_file[row.file_id][result.id.key] = result
    return [ResultFile(Path(f.path), dict(f.machine_info), by_file[f.id], f.datetime) for f in stored]


def find_file(engine: Engine, reference: str) -> ResultFile:
    """A stored file by its content hash (a prefix of 6 or more hex digits) or by the path it came from."""
    with engine.connect() as connection:
        conditions: list[Any] = [files.c.path == str(Path(reference).resolve())]
        if len(reference) >= 6 and all(c in "0123456789abcdef" for c in reference.lower()):
            conditions.append(files.c.content_hash.startswith(reference.lower()))
        found = connection.execute(select(files.c.id, files.c.path).where(or_(*conditions))).all()
    if not found:
        raise UsageError(f"{reference}: no such file in the store (give a content hash prefix or an ingested path)")
    if len(found) > 1:
        raise UsageError(f"{reference}: names {len(found)} stored files; give more of the hash")
    return result_files(engine, [found[0].id])[0]


def stored_files(engine: Engine) -> list[dict[str, Any]]:
    """One line per stored file: its hash, path, date, host and row count (``sdshape store list``)."""
    with engine.connect() as connection:
        listed = connection.execute(select(files).order_by(files.c.id)).all()
        counts: dict[int, int] = defaultdict(int)
        for (file_id,) in connection.execute(select(rows.c.file_id)):
            counts[file_id] += 1
    return [
        {"hash": f.content_hash[:12], "path": f.path, "datetime": f.datetime, "host": f.host, "rows": counts[f.id]}
        for f in listed
    ]


def history_rows(engine: Engine) -> list[tuple[dict[str, Any], dict[str, Any], Any]]:
    """(machine_info, the row's id, backend options and methods, its statistics) for every ok row: what
    ``history`` needs, read from the columns the store keeps for it (no row JSON parsed)."""
    with engine.connect() as connection:
        machines = {f.id: (dict(f.machine_info), f.datetime, f.path) for f in connection.execute(select(files))}
        query = select(
            rows.c.file_id, rows.c.stage, rows.c.shape, rows.c.backend, rows.c.precision, rows.c.batch,
            rows.c.resolution, rows.c.steps, rows.c.median_s, rows.c.iqr_s, rows.c.n_rounds, rows.c.methods,
            rows.c.backend_options,
        ).where(rows.c.status == "ok", rows.c.median_s.is_not(None))  # fmt: skip
        found = []
        for row in connection.execute(query):
            machine, when, path = machines[row.file_id]
            ident = {name: getattr(row, name) for name in ID_FIELDS}
            found.append((machine, {**ident, "backend_options": row.backend_options or {}}, row, when, path))
    return found
