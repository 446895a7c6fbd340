"""The results store: an embedded SQLite file by default, PostgreSQL by URL, one SQLAlchemy Core schema.

Result files stay the source of truth; the store indexes them (``files``: one per ingested file, by the
SHA-256 of its bytes; ``rows``: every row with its series key, full ``extra_info`` and statistics;
``rounds``: the raw rounds). Portable types only (Integer, Float, String, Text, JSON), so the same code
serves SQLite on a laptop and PostgreSQL when several hosts write.

SQLite runs in WAL mode with a 30 s busy timeout, and write transactions begin IMMEDIATE (they take the
write lock up front, so two writers never deadlock on a lock upgrade); a "database is locked" that still
escapes is retried. A file that is not a database, or a database without this schema, is a one-line
usage error: never a silent empty history.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable
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
from sqlalchemy.exc import DatabaseError, OperationalError

from sdshape.core.errors import UsageError

STORE_ENV = "SDSHAPE_STORE"
STORE_SCHEMA_VERSION = 1
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
)
rounds = Table(
    "rounds",
    metadata,
    Column("row_id", Integer, ForeignKey("rows.id", ondelete="CASCADE"), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("seconds", Float, nullable=False),
)
Index("rows_by_series", rows.c.series)
Index("rows_by_file", rows.c.file_id)

T = TypeVar("T")


def default_location() -> Path:
    from platformdirs import user_data_dir

    return Path(os.environ.get(STORE_ENV) or Path(user_data_dir("sdshape")) / "store.sqlite")


def url_of(spec: str | os.PathLike | None) -> str:
    """``--store``: a PostgreSQL URL, or a path to the SQLite file (default: the user data directory)."""
    text = str(spec) if spec is not None else str(default_location())
    if text.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if "://" in text:
        raise UsageError(f"--store {text}: not a store; valid: a SQLite file path or a postgresql:// URL")
    path = Path(text).expanduser()
    if path.is_dir():
        raise UsageError(f"--store {path}: is a directory; give a file path such as {path / 'store.sqlite'}")
    if not path.parent.is_dir():
        raise UsageError(f"--store {path}: folder {path.parent} does not exist")
    return f"sqlite:///{path}"


def _sqlite_setup(dbapi_connection: Any, _: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun below, IMMEDIATE
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout = 30000")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    writing = connection.get_execution_options().get("sdshape_write")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def writer(engine: Engine) -> Engine:
    """The engine for a write transaction: on SQLite it takes the write lock when it begins."""
    return engine.execution_options(sdshape_write=True)


def open_store(spec: str | os.PathLike | None = None, create: bool = True) -> Engine:
    """The store's engine, its schema created if new (``create``) and checked either way."""
    url = url_of(spec)
    shown = url.split("@")[-1] if url.startswith("postgresql") else url.removeprefix("sqlite:///")
    engine = create_engine(url, future=True)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_setup)
        event.listen(engine, "begin", _sqlite_begin)
    try:
        with_retries(lambda: _prepare(engine, create))
    except (DatabaseError, sqlite3.DatabaseError) as error:
        reason = str(getattr(error, "orig", error)).splitlines()[0]
        raise UsageError(f"store {shown}: cannot be read ({reason}); is it an sdshape store?") from None
    except StoreError as error:
        raise UsageError(f"store {shown}: {error}") from None
    return engine


class StoreError(Exception):
    pass


def _prepare(engine: Engine, create: bool) -> None:
    existing = set(inspect(engine).get_table_names())
    ours = set(metadata.tables)
    if existing and not existing & ours:
        raise StoreError(f"holds other tables ({', '.join(sorted(existing)[:5])}), not an sdshape store")
    if not ours <= existing:
        if existing & ours and not create:
            raise StoreError(f"lacks tables {', '.join(sorted(ours - existing))}: damaged or from another tool")
        if not create:
            raise StoreError("is empty: ingest files with `sdshape store add`")
        with writer(engine).begin() as connection:  # one creator at a time; the others find it made
            metadata.create_all(connection, checkfirst=True)
            if connection.execute(store_info.select()).first() is None:
                connection.execute(store_info.insert().values(key="schema_version", value=str(STORE_SCHEMA_VERSION)))
    with engine.connect() as connection:
        found = connection.execute(store_info.select().where(store_info.c.key == "schema_version")).first()
    if found is None or int(found.value) > STORE_SCHEMA_VERSION:
        raise StoreError(f"store schema {found.value if found else '?'} is newer than this sdshape's; upgrade")


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
