"""Where the store is: ``--store`` (a SQLite path or a PostgreSQL URL), ``$SDSHAPE_STORE``, or the user
data directory; and the checks a path gets before any connection is made.

A writing command makes the default store's folder and needs the store and its folder writable; a
reading command needs the file, and never makes one. Each failure is one line naming the path, which
is shown with bytes that are not UTF-8 as ``\\xNN`` escapes (a terminal or a database takes it as text).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sdshape.core.errors import UsageError

STORE_ENV = "SDSHAPE_STORE"


def default_location() -> Path:
    from platformdirs import user_data_dir

    return Path(os.environ.get(STORE_ENV) or Path(user_data_dir("sdshape")) / "store.sqlite")


def display(path: str | os.PathLike) -> str:
    """A path as text any terminal or database takes: bytes that are not UTF-8 as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Location:
    url: str
    path: Path | None  # the SQLite file; None for a PostgreSQL URL
    shown: str  # for messages: the path, or the URL without its credentials
    default: bool  # the user data directory's store (its folder is made when writing)


def locate(spec: str | os.PathLike | None) -> Location:
    """``--store``: a PostgreSQL URL, or a path to the SQLite file (default: the user data directory)."""
    default = spec is None or os.fspath(spec) == ""
    text = os.fspath(default_location() if default else spec)
    text = text if isinstance(text, str) else os.fsdecode(text)
    if text.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        url = "postgresql+psycopg://" + text.split("://", 1)[1]
        return Location(url, None, url.split("@")[-1], False)
    if "://" in text:
        raise UsageError(f"--store {display(text)}: not a store; valid: a SQLite file path or a postgresql:// URL")
    path = Path(text).expanduser()
    return Location(f"sqlite:///{path}", path, display(path), default and not os.environ.get(STORE_ENV))


def check_path(where: Location, write: bool) -> bool:
    """Whether the SQLite file exists, after the checks a writing (or reading) command needs, each a
    one-line usage error: writing makes the default folder and needs the file and its folder writable
    (SQLite's journal goes beside the store); reading needs the file, and never makes one."""
    path, flag = where.path, f"--store {where.shown}"
    assert path is not None
    try:
        if path.is_dir():
            raise UsageError(f"{flag}: is a directory; give a file path such as {display(path / 'store.sqlite')}")
        exists = path.exists()
        if not exists and not write:
            if where.default:
                raise UsageError(f"no store yet at {where.shown}: `sdshape store add FILES...` makes it")
            raise UsageError(f"{flag}: no such store (the file does not exist; reading never makes one)")
        if exists and not path.is_file():
            raise UsageError(f"{flag}: is not a regular file")
        folder = path.parent
        if write and where.default:
            folder.mkdir(parents=True, exist_ok=True)
        if not folder.is_dir():
            raise UsageError(f"{flag}: folder {display(folder)} does not exist")
        if write and exists and not os.access(path, os.W_OK):
            raise UsageError(f"{flag}: the store is read-only (no write permission on the file)")
        if write and not os.access(folder, os.W_OK | os.X_OK):
            raise UsageError(f"{flag}: cannot write in its folder {display(folder)} (SQLite's journal goes there)")
    except OSError as error:
        raise UsageError(f"{flag}: cannot use this path ({error.strerror or error})") from None
    return exists
