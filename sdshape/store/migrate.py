"""Store schema migrations: an older store brought to this sdshape's version by a writing command.

Each step is a function of a connection inside one write transaction, with the version recorded in the
same transaction, so a migration interrupted (a killed process, a full disk) leaves the store at its old
version, whole, for the next writer to migrate again. A second writer that waited for the lock finds the
store migrated and does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import JSON, Connection, Engine, select

from sdshape.result.records import ReferenceWorkload
from sdshape.store.db import STORE_SCHEMA_VERSION, rows, store_info, with_retries, writer


def reference_summary(extra_info: Any) -> dict[str, Any] | None:
    """What the ``reference`` column holds for a row: its reference workload's summary, or None."""
    raw = extra_info.get("reference") if isinstance(extra_info, dict) else None
    reference = ReferenceWorkload.from_json(raw) if isinstance(raw, dict) else None
    return (reference.summary() or None) if reference is not None else None


def _add_reference(connection: Connection) -> None:
    """1 -> 2: ``rows.reference``, filled from each row's ``extra_info`` (rows an older sdshape ingested
    from files that hold a reference workload)."""
    kind = JSON().compile(dialect=connection.dialect)
    connection.exec_driver_sql(f"ALTER TABLE rows ADD COLUMN reference {kind}")
    for row_id, info in connection.execute(select(rows.c.id, rows.c.extra_info)).all():
        summary = reference_summary(info)
        if summary is not None:
            connection.execute(rows.update().where(rows.c.id == row_id).values(reference=summary))


MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _add_reference}  # the version each step reaches


def migrate(engine: Engine) -> int:
    """The store at :data:`STORE_SCHEMA_VERSION`, one transaction for all the steps; the version it was at."""

    def work() -> int:
        with writer(engine).begin() as connection:
            query = select(store_info.c.value).where(store_info.c.key == "schema_version")
            found = int(connection.execute(query).scalar_one())
            for version in range(found + 1, STORE_SCHEMA_VERSION + 1):
                MIGRATIONS[version](connection)
            if found < STORE_SCHEMA_VERSION:
                done = store_info.update().where(store_info.c.key == "schema_version")
                connection.execute(done.values(value=str(STORE_SCHEMA_VERSION)))
            return found

    return with_retries(work)
