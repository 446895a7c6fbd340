"""Writing output files so that nothing is lost or left half-written.

- Every location is checked before any work starts (:func:`file_target`,
  :func:`folder_target`): a missing or read-only folder, a folder where a file
  is wanted (or the reverse), an empty path, each a one-line usage error.
- Every file is written to a temporary file beside its target, flushed to disk
  and renamed into place (:func:`write_atomic`): a full disk leaves the old
  file, or none, never a truncated one.
- JSON is standard JSON (:func:`standard_json`): a NaN or an infinity becomes
  null, and the document lists where and what it was.
- When a results file still cannot be written at the end, the results go to a
  fallback file whose path is printed (:func:`write_or_fall_back`), never lost.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

from sdshape.core.errors import UsageError


def file_target(text: str | os.PathLike, flag: str) -> Path:
    """A file that will be written at the end: it can be, or this is a one-line usage error now."""
    if not str(text).strip():
        raise UsageError(f"{flag}: empty path; give a file path")
    target = Path(text)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise UsageError(f"{flag} {text}: is a directory; give a file path")
    if target.exists() and not target.is_file():
        raise UsageError(f"{flag} {text}: is not a regular file")
    if not parent.is_dir():
        raise UsageError(f"{flag} {text}: cannot write there (directory {parent} does not exist)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {text}: cannot write there (directory {parent} is not writable)")
    if target.exists() and not os.access(target, os.W_OK):
        raise UsageError(f"{flag} {text}: file exists and is not writable")
    return target


def folder_target(text: str | os.PathLike, flag: str) -> Path:
    """A folder that files will be written into: it exists and is writable, or can be made so."""
    if not str(text).strip():
        raise UsageError(f"{flag}: empty path; give a folder")
    folder = Path(text)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{flag} {text}: is a file, not a folder")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{flag} {text}: {existing} is a file, so the folder cannot be made")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {text}: cannot write there ({existing} is not writable)")
    return folder


def _non_finite(value: Any, path: str, found: list[str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        found.append(f"{path}: {value}")
        return None
    if isinstance(value, dict):
        return {key: _non_finite(item, f"{path}.{key}" if path else str(key), found) for key, item in value.items()}
    if isinstance(value, (list, tuple, array)):
        return [_non_finite(item, f"{path}[{index}]", found) for index, item in enumerate(value)]
    return value


def standard_json(document: Any, indent: int | None = 2) -> str:
    """JSON without bare NaN or Infinity: such values become null, listed under ``non_finite_nulled``."""
    found: list[str] = []
    clean = _non_finite(document, "", found)
    if found and isinstance(clean, dict):
        clean["non_finite_nulled"] = found
    return json.dumps(clean, indent=indent, allow_nan=False, default=str)


def _write_bytes(handle: Any, data: bytes) -> None:
    handle.write(data)
    handle.flush()
    os.fsync(handle.fileno())


def _temporary_beside(path: Path, data: str | bytes) -> Path:
    """``data`` in a new temporary file in ``path``'s folder, flushed to disk (removed again on failure)."""
    payload = data.encode() if isinstance(data, str) else data
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            _write_bytes(handle, payload)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file beside it and a rename: all of it, or nothing."""
    path = Path(path)
    temporary = _temporary_beside(path, data)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_new(path: Path, data: str | bytes) -> Path:
    """Like :func:`write_atomic`, but never over an existing file (``FileExistsError`` then)."""
    path = Path(path)
    temporary = _temporary_beside(path, data)
    try:
        os.link(temporary, path)  # fails if the name is taken: an exclusive, complete create
    finally:
        temporary.unlink(missing_ok=True)
    return path


def figure_png(figure: Any, dpi: int = 110) -> bytes:
    """A matplotlib figure as PNG bytes (then written atomically), and the figure closed."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    return buffer.getvalue()


def fallback_path(stem: str) -> Path:
    return Path(tempfile.gettempdir()) / f"sdshape-{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json"


def write_or_fall_back(path: Path, text: str, stem: str = "results") -> tuple[Path, str | None]:
    """Write ``text`` to ``path``; if that fails, to a fallback file. Returns where it went, and why not
    to ``path`` (None when it went there)."""
    try:
        return write_atomic(path, text), None
    except OSError as error:
        reason = f"{type(error).__name__}: {error}"
    fallback = fallback_path(stem)
    write_atomic(fallback, text)
    return fallback, reason


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def machine_slug(machine_info: dict[str, Any]) -> str:
    if machine_info.get("gpu_name"):
        return slug(machine_info["gpu_name"])
    return slug(f"cpu {machine_info.get('cpu_model') or ''}")


def save(
    document: dict[str, Any], results_dir: Path, shape: str, backends: list[str], precision: str, text: str = ""
) -> Path:
    """Write the document (or ``text``, its JSON already made) to a fresh file.

    An existing name gets -2, -3, ... The file appears complete or not at all (written beside it,
    then linked into place), and never replaces another (the link fails if the name is taken), so
    concurrent runs each get their own."""
    folder = Path(results_dir) / machine_slug(document.get("machine_info", {}))
    folder.mkdir(parents=True, exist_ok=True)
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    stem = "-".join((date, slug(shape), "+".join(slug(b) for b in backends), precision))
    text = text or standard_json(document)
    for attempt in range(1, 10_000):
        path = folder / (f"{stem}.json" if attempt == 1 else f"{stem}-{attempt}.json")
        try:
            return write_new(path, text)
        except FileExistsError:
            continue
    raise RuntimeError(f"no free file name for {stem} in {folder}")
