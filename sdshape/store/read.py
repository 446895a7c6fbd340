"""Result files back out of the store, as the same :class:`~sdshape.result.io.ResultFile` objects a
file reader makes, so ``compare``, ``history`` and ``report`` run unchanged on either.

Stored figures pass the same checks as a file's (``sdshape.result.io.bad_numbers``) as they come out: a
store that took in a file before those checks existed (rounds of 1e308 s, say) has that file refused
by name, or left out with a note, and never overflows what is computed from the rest."""

from __future__ import annotations

from array import array
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Row, null, or_, select

from sdshape.core.errors import UsageError
from sdshape.core.vocabulary import ID_FIELDS
from sdshape.result.io import ResultFile, bad_numbers
from sdshape.result.model import StageResult
from sdshape.result.rules import MAX_ROUND_S, MIN_ROUND_S
from sdshape.store.db import failures, files, rounds, row_columns, rows
from sdshape.store.location import display


def result_files(
    engine: Engine, file_ids: list[int] | None = None, skipped: list[str] | None = None
) -> list[ResultFile]:
    """Every stored file (or those named), oldest ingested first, rows and rounds included. A file holding
    a figure no results file may hold is a usage error naming it, or, given ``skipped``, left out with a
    note there."""
    with failures(engine, "cannot be read"), engine.connect() as connection:
        query = select(files).order_by(files.c.id)
        if file_ids is not None:
            query = query.where(files.c.id.in_(file_ids))
        stored = connection.execute(query).all()
        wanted = [f.id for f in stored]
        row_query = select(*row_columns(connection)).where(rows.c.file_id.in_(wanted)).order_by(rows.c.id)
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
    refused: dict[int, str] = {}
    for row in stored_rows:
        stats = dict(row.stats) if row.stats is not None else None
        if stats is not None:
            stats["data"] = array("d", taken.get(row.id, []))
        info = dict(row.extra_info)
        problem = bad_numbers(info, stats)
        if problem:
            refused.setdefault(row.file_id, f"row {info.get('stage')!r}: {problem}")
            continue
        result = StageResult.from_extra_info(info, stats)
        by_file[row.file_id][result.id.key] = result
    found = []
    for f in stored:
        if f.id in refused:
            note = _refused(f, refused[f.id])
            if skipped is None:
                raise UsageError(note)
            skipped.append(note)
            continue
        found.append(ResultFile(Path(f.path), dict(f.machine_info), by_file[f.id], f.datetime))
    return found


def _refused(file: Row, problem: str) -> str:
    return (
        f"stored file {file.content_hash[:12]} ({file.path}): {problem} "
        f"(`sdshape store remove {file.content_hash[:12]}` takes it out)"
    )


def _matches(connection: Connection, reference: str) -> list[Row]:
    conditions: list[Any] = [files.c.path == display(Path(reference).resolve())]
    if len(reference) >= 6 and all(c in "0123456789abcdef" for c in reference.lower()):
        conditions.append(files.c.content_hash.startswith(reference.lower()))
    return connection.execute(select(files.c.id, files.c.content_hash, files.c.path).where(or_(*conditions))).all()


def one_file(connection: Connection, reference: str) -> Row:
    """The one stored file a reference names: a content hash prefix of 6 or more hex digits, or the path it
    was ingested from. None, or several, is a one-line usage error."""
    found = _matches(connection, reference)
    if not found:
        raise UsageError(
            f"{display(reference)}: no such file in the store (give 6 or more hex digits of a content hash, "
            "or an ingested path; `sdshape store list` shows them)"
        )
    if len(found) > 1:
        raise UsageError(f"{display(reference)}: names {len(found)} stored files; give more of the hash")
    return found[0]


def find_file(engine: Engine, reference: str) -> ResultFile:
    """A stored file by its content hash (a prefix of 6 or more hex digits) or by the path it came from."""
    with failures(engine, "cannot be read"), engine.connect() as connection:
        file = one_file(connection, reference)
    return result_files(engine, [file.id])[0]


def stored_files(engine: Engine) -> list[dict[str, Any]]:
    """One line per stored file: its hash, path, date, host and row count (``sdshape store list``)."""
    with failures(engine, "cannot be read"), engine.connect() as connection:
        listed = connection.execute(select(files).order_by(files.c.id)).all()
        counts: dict[int, int] = defaultdict(int)
        for (file_id,) in connection.execute(select(rows.c.file_id)):
            counts[file_id] += 1
    return [
        {"hash": f.content_hash[:12], "path": f.path, "datetime": f.datetime, "host": f.host, "rows": counts[f.id]}
        for f in listed
    ]


def history_rows(engine: Engine, skipped: list[str] | None = None) -> list[tuple[Any, ...]]:
    """(machine_info, the row's id, backend options and methods, its statistics) for every ok row: what
    ``history`` needs, read from the columns the store keeps for it (no row JSON parsed; ``reference`` is
    null in a store older than that column). A file with a median or IQR no results file may hold is left
    out whole, with a note in ``skipped``."""
    with failures(engine, "cannot be read"), engine.connect() as connection:
        stored = {f.id: f for f in connection.execute(select(files))}
        machines = {f.id: (dict(f.machine_info), f.datetime, f.path) for f in stored.values()}
        query = select(
            rows.c.file_id, rows.c.stage, rows.c.shape, rows.c.backend, rows.c.precision, rows.c.batch,
            rows.c.resolution, rows.c.steps, rows.c.median_s, rows.c.iqr_s, rows.c.n_rounds, rows.c.methods,
            rows.c.backend_options, reference_column(connection),
            rows.c.extra_info["throttle"].label("throttle"),  # a small object: no whole row's JSON parsed
        ).where(rows.c.status == "ok", rows.c.median_s.is_not(None))  # fmt: skip
        found = []
        refused: dict[int, str] = {}
        for row in connection.execute(query):
            problem = _bad_history_row(row)
            if problem:
                refused.setdefault(row.file_id, f"row {row.stage!r}: {problem}")
                continue
            machine, when, path = machines[row.file_id]
            ident = {name: getattr(row, name) for name in ID_FIELDS}
            found.append((machine, {**ident, "backend_options": row.backend_options or {}}, row, when, path))
    if skipped is not None:
        skipped += [_refused(stored[file_id], problem) for file_id, problem in refused.items()]
    return [entry for entry in found if entry[2].file_id not in refused]


def reference_column(connection: Connection) -> Any:
    """``rows.reference``, or a null in its place in a store of schema 1 (read as it is, not migrated)."""
    held = {column.name for column in row_columns(connection)}
    return rows.c.reference if "reference" in held else null().label("reference")


def _bad_history_row(row: Row) -> str | None:
    """What is wrong with the figures history reads from a stored row, by the bounds on a results file."""
    if not MIN_ROUND_S <= row.median_s <= MAX_ROUND_S:
        return f"median {row.median_s!r} s is not a time of {MIN_ROUND_S:g} to {MAX_ROUND_S:g} s"
    if row.iqr_s is not None and not 0 <= row.iqr_s <= MAX_ROUND_S:
        return f"IQR {row.iqr_s!r} s is not a time of 0 to {MAX_ROUND_S:g} s"
    if row.n_rounds is not None and row.n_rounds < 0:
        return f"{row.n_rounds} rounds"
    return None
