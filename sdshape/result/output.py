"""Writing output files so that nothing is lost or left half-written.

- Every location is checked before any work starts (:func:`file_target`,
  :func:`folder_target`): a missing or read-only folder, a folder where a file
  is wanted (or the reverse), an empty path, a name longer than the file system
  allows (with the temporary file's 14 bytes), a name that is not UTF-8, each a
  one-line usage error.
- Every file is written to a temporary file beside its target, flushed to disk
  and renamed into place (:func:`write_atomic`): a full disk leaves the old
  file, or none, never a truncated one.
- JSON is standard JSON (:func:`standard_json`): a NaN or an infinity becomes
  null, and the document lists where and what it was.
- When a results file still cannot be written at the end, the results go to a
  fallback file whose path is printed (:func:`write_or_fall_back`), never lost;
  another output file that cannot be written (a report's page, a chart) is a
  :class:`~sdshape.core.errors.WriteError` naming it and why (:func:`write_output`).
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

from sdshape.core.errors import UsageError, WriteError

# tempfile.mkstemp's name beside a target: "." + name + "." + 8 random characters + ".tmp"
TEMPORARY_EXTRA = 14
# What a folder target must leave room for inside it: a subfolder and a file name (run --save's machine
# folder and dated name, report's and history's charts), each within one name's limit.
INSIDE_A_FOLDER = 2 * 256


def _shown(text: str | os.PathLike) -> str:
    """A path as a one-line message can print it: undecodable bytes escaped; only a path far beyond any
    real one (a 4,200-byte path) shortened, so the user can still copy the path a message names."""
    shown = os.fsencode(text).decode("utf-8", "backslashreplace")
    return shown if len(shown) <= 400 else f"{shown[:200]}...{shown[-150:]}"


def _name_limits(path: str) -> tuple[int, int]:
    """The file system's longest name and longest path, where ``path`` would be made."""
    existing = os.path.abspath(path)
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    try:
        return os.pathconf(existing, "PC_NAME_MAX"), os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf here: the usual Linux limits
        return 255, 4096


def _usable_name(text: str | os.PathLike, flag: str, extra_name: int, extra_path: int) -> None:
    """A path that is UTF-8 and that the file system can hold, with ``extra_name`` bytes more on its last
    name (the temporary file beside it) and ``extra_path`` more on the whole (what goes inside a folder)."""
    try:
        os.fspath(text).encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(
            f"{flag} {_shown(text)}: not a UTF-8 name (it could not be printed); give a UTF-8 path"
        ) from None
    name_max, path_max = _name_limits(os.fspath(text))
    parts = Path(text).parts
    for index, part in enumerate(parts):
        size = len(os.fsencode(part)) + (extra_name if index == len(parts) - 1 else 0)
        if size > name_max:
            extra = f" ({size} as the temporary file written beside it)" if size > len(os.fsencode(part)) else ""
            raise UsageError(
                f"{flag} {_shown(text)}: the name {_shown(part)} is {len(os.fsencode(part))} bytes{extra}; "
                f"this file system allows {name_max}"
            )
    size = len(os.fsencode(os.path.abspath(text))) + extra_path
    if size > path_max:
        raise UsageError(
            f"{flag} {_shown(text)}: the path is {size - extra_path} bytes ({size} with room for what is written "
            f"there); this file system allows {path_max}"
        )


def _probe(text: str | os.PathLike, flag: str, check: Any) -> Any:
    """``check()``; a file system error while looking (a folder that cannot be searched) is a usage error."""
    try:
        return check()
    except OSError as error:
        raise UsageError(f"{flag} {_shown(text)}: cannot use this path ({error.strerror or error})") from None


def file_target(text: str | os.PathLike, flag: str) -> Path:
    """A file that will be written at the end: it can be, or this is a one-line usage error now."""
    if not str(text).strip():
        raise UsageError(f"{flag}: empty path; give a file path")
    _usable_name(text, flag, TEMPORARY_EXTRA, TEMPORARY_EXTRA)
    return _probe(text, flag, lambda: _file_target(text, flag))


def _file_target(text: str | os.PathLike, flag: str) -> Path:
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
    _usable_name(text, flag, 0, INSIDE_A_FOLDER)
    return _probe(text, flag, lambda: _folder_target(text, flag))


def _folder_target(text: str | os.PathLike, flag: str) -> Path:
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


def _why(error: OSError) -> str:
    return f"{type(error).__name__}: {error}"


def write_or_fall_back(path: Path, text: str, stem: str = "results") -> tuple[Path, str | None]:
    """Write ``text`` to ``path``; if that fails, to a fallback file. Returns where it went, and why not
    to ``path`` (None when it went there). When the fallback fails too: :class:`WriteError`, naming both."""
    try:
        return write_atomic(path, text), None
    except OSError as error:
        reason = _why(error)
    fallback = fallback_path(stem)
    try:
        write_atomic(fallback, text)
    except OSError as error:
        raise WriteError(f"could not write {_shown(path)} ({reason}), nor {fallback} ({_why(error)})") from None
    return fallback, reason


def write_output(path: Path, data: str | bytes) -> Path:
    """:func:`write_atomic` for one of a command's output files (a report's page, a chart): a failure is a
    :class:`WriteError` naming the file and why; the file is left as it was, or absent."""
    try:
        return write_atomic(path, data)
    except OSError as error:
        raise WriteError(f"could not write {_shown(path)} ({_why(error)})") from None


def make_folder(folder: Path) -> Path:
    """The output folder, made if missing (checked by :func:`folder_target` before the work)."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WriteError(f"could not make the folder {_shown(folder)} ({_why(error)})") from None
    return Path(folder)


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
