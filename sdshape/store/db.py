"""The results store: an embedded SQLite file by default, PostgreSQL by URL, one SQLAlchemy Core schema.

Result files stay the source of truth; the store indexes them (``files``: one per ingested file, by the
SHA-256 of its bytes; ``rows``: every row with its series key, full ``extra_info`` and statistics;
``rounds``: the raw rounds). Portable types only (Integer, Float, String, Text, JSON), so the same code
serves SQLite on a laptop and PostgreSQL when several hosts write.

SQLite runs in WAL mode with a 30 s busy timeout, and write transactions begin IMMEDIATE (they take the
write lock up front, so two writers never deadlock on a lock upgrade); a "database is locked" that still
escapes is retried. A file that is not a database, or a database without this schema (a table or column
missing, a schema version that is not a number), is a one-line usage error for reading and writing
commands alike: never a silent empty history, never a quiet rebuild. Reading never makes a store (its
connections are query-only); writing makes the default store's folder, and checks that the store and
its folder are writable before any work starts. Database errors later (a full disk) are one line, and
the transaction they broke is rolled back.

Store schema versions: 1, the first; 2 (2026-12-04) adds ``rows.reference``, the run's reference workload
as ``history`` compares it. A writing command migrates an older store in one transaction (the column
added, and filled from each row's ``extra_info``); a reading command reads it as it is, the columns it
lacks read as null (:func:`row_columns`).
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
)
from sqlalchemy.exc import DBAPIError, OperationalError

from sdshape.core.errors import UsageError
from sdshape.store.location import check_path, display, locate

STORE_SCHEMA_VERSION = 2
metadata = MetaData()

store_info = Table(
    "sdshape_store",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
files = Table(
    "files",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("content_hash", String(64), nullable=False, unique=True),
    Column("path", Text, nullable=False),
    Column("datetime", String(64)),
    Column("host", Text),
    Column("machine_info", JSON, nullable=False),
    Column("options", JSON),
    Column("ingested_at", Float, nullable=False),
)
rows = Table(
    "rows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("file_id", Integer, ForeignKey("files.id", ondelete="CASCADE"), nullable=False),
    Column("series", String(16), nullable=False),  # the default series key's hash
    Column("stage", String(64), nullable=False),
    Column("shape", String(128), nullable=False),
    Column("backend", String(128), nullable=False),
    Column("precision", String(16), nullable=False),
    Column("batch", Integer, nullable=False),
    Column("resolution", Integer, nullable=False),
    Column("steps", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("median_s", Float),
    # what history reads, beside the full row: so a store's history needs no row's JSON parsed
    Column("iqr_s", Float),
    Column("n_rounds", Integer),
    Column("methods", JSON),
    Column("backend_options", JSON),
    Column("extra_info", JSON, nullable=False),
    Column("stats", JSON),  # pytest-benchmark's statistics without the rounds
    Column("reference", JSON),  # the run's reference workload as history compares it (store schema 2)
)
rounds = Table(
    "rounds",
    metadata,
    Column("row_id", Integer, ForeignKey("rows.id", ondelete="CASCADE"), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("seconds", Float, nullable=False),
)
# Columns later store versions added: a store of an earlier version lacks them, and is read without them.
ADDED_IN = {("rows", "reference"): 2}
Index("rows_by_series", rows.c.series)
Index("rows_by_file", rows.c.file_id)

T = TypeVar("T")


def _sqlite_setup(write: bool, dbapi_connection: Any, _: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun below, IMMEDIATE
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout = 30000")
    if write:
        cursor.execute("PRAGMA journal_mode = WAL")
    else:
        cursor.execute("PRAGMA query_only = ON")  # a reading command writes nothing, not even a header
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    writing = connection.get_execution_options().get("sdshape_write")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def writer(engine: Engine) -> Engine:
    """The engine for a write transaction: on SQLite it takes the write lock when it begins."""
    return engine.execution_options(sdshape_write=True)


def name_of(engine: Engine) -> str:
    """The store as messages name it: the SQLite file, or the PostgreSQL host and database."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return display(url.database or "")
    return f"{url.host}/{url.database}"


def reason(error: BaseException) -> str:
    """A database error's own words, one line (SQLAlchemy's wrapper adds the statement and a link)."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextmanager
def failures(engine: Engine, doing: str) -> Iterator[None]:
    """A database error inside as one line naming the store and what failed. A write transaction that
    breaks is rolled back, so nothing of it stays in the store."""
    try:
        yield
    except DBAPIError as error:
        raise UsageError(f"store {name_of(engine)}: {doing} ({reason(error)})") from None


def open_store(spec: str | os.PathLike | None = None, create: bool = True) -> Engine:
    """The store's engine, its schema checked. ``create`` is for the writing commands: the default folder
    and a new store are made, and the store must be writable. Without it (the reading commands) nothing
    is made or written: a missing store is a usage error, and the connections are query-only."""
    where = locate(spec)
    existed = check_path(where, create) if where.path is not None else True
    engine = create_engine(where.url, future=True)
    if where.path is not None:
        event.listen(engine, "connect", partial(_sqlite_setup, create))
        event.listen(engine, "begin", _sqlite_begin)
    try:
        with_retries(lambda: _prepare(engine, create))
        return engine
    except StoreError as error:
        message = f"store {where.shown}: {error}"
    except (DBAPIError, sqlite3.Error) as error:
        why = reason(error)
        if "not a database" in why or "malformed" in why:
            message = f"store {where.shown}: cannot be read ({why}): not an sdshape store, or damaged"
        else:
            message = f"store {where.shown}: cannot be {'written' if create else 'read'} ({why})"
    engine.dispose()
    if not existed and where.path is not None:
        _remove_unmade(where.path)
    raise UsageError(message)


def _remove_unmade(path: Path) -> None:
    """A store file this call began and could not make (a full disk, say): removed with its journal, unless
    it holds tables (another process made the store meanwhile)."""
    try:
        with closing(sqlite3.connect(os.fsencode(path))) as connection:
            if connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                return
    except sqlite3.Error:
        pass
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(os.fsdecode(os.fsencode(path) + suffix.encode())).unlink(missing_ok=True)


class StoreError(Exception):
    pass


DAMAGED = "damaged, or not an sdshape store"


def _prepare(engine: Engine, create: bool) -> None:
    with engine.connect() as connection:
        existing = set(inspect(connection).get_table_names())
    if not existing and create:
        with writer(engine).begin() as connection:  # one creator at a time; the others find it made
            if not inspect(connection).get_table_names():
                metadata.create_all(connection)
                connection.execute(store_info.insert().values(key="schema_version", value=str(STORE_SCHEMA_VERSION)))
        with engine.connect() as connection:
            existing = set(inspect(connection).get_table_names())
    if not existing:
        raise StoreError("is empty: ingest files with `sdshape store add`")
    version = _check_schema(engine, existing)
    if create and version < STORE_SCHEMA_VERSION:
        from sdshape.store.migrate import migrate

        migrate(engine)


def _check_schema(engine: Engine, existing: set[str]) -> int:
    """The store's schema version, its tables and columns checked to be those this sdshape or an earlier one
    wrote at that version; anything else is refused by reading and writing commands alike (never rebuilt: a
    damaged store is the user's to look at)."""
    ours = set(metadata.tables)
    if not existing & ours:
        raise StoreError(f"holds other tables ({', '.join(sorted(existing)[:5])}), not an sdshape store")
    if ours - existing:
        raise StoreError(f"lacks tables {', '.join(sorted(ours - existing))}: {DAMAGED}")
    with engine.connect() as connection:
        found = connection.execute(store_info.select().where(store_info.c.key == "schema_version")).first()
        inspector = inspect(connection)
        held = {table.name: {c["name"] for c in inspector.get_columns(table.name)} for table in metadata.sorted_tables}
    if found is None:
        raise StoreError(f"records no schema version: {DAMAGED}")
    try:
        version = int(found.value)
    except (TypeError, ValueError):
        raise StoreError(f"schema version {found.value!r} is not a number: {DAMAGED}") from None
    if version < 1:
        raise StoreError(f"schema version {version} is not one sdshape writes: {DAMAGED}")
    if version > STORE_SCHEMA_VERSION:
        raise StoreError(f"store schema {version} is newer than this sdshape's; upgrade")
    for table in metadata.sorted_tables:
        lacking = [
            c.name
            for c in table.columns
            if c.name not in held[table.name] and ADDED_IN.get((table.name, c.name), 1) <= version
        ]
        if lacking:
            raise StoreError(f"table {table.name} lacks columns {', '.join(lacking)}: {DAMAGED}")
    return version


def row_columns(connection: Any) -> list[Column]:
    """The ``rows`` table's columns this store holds (one of an earlier version lacks those added since), for
    a query that must read an older store as it is."""
    held = {column["name"] for column in inspect(connection).get_columns("rows")}
    return [column for column in rows.columns if column.name in held]


def with_retries(work: Callable[[], T], attempts: int = 8) -> T:
    """Run ``work``, retrying on a locked SQLite database (after the busy timeout) with jittered backoff."""
    for attempt in range(attempts):
        try:
            return work()
        except OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2**attempt * (1 + random.random()))
    raise AssertionError("unreachable")
