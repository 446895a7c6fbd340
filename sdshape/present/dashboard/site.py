"""Writing the site whole or not at all: built in a hidden folder beside ``--out``, then swapped in.

On Linux the swap is one ``renameat2(RENAME_EXCHANGE)``: a file server sees the old site or the new one,
never neither. Elsewhere (or on a file system without it) it is two renames, and a failure between them
puts the old site back. A folder is replaced only when ``sdshape publish`` wrote it (its
``sdshape-site.json`` says so) or it is empty: a user's other folder is never taken for a site.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from sdshape.core.errors import UsageError, WriteError
from sdshape.present.dashboard.pages import index_page, series_page
from sdshape.present.dashboard.timeline_data import filter_choices
from sdshape.result.output import make_folder, standard_json, write_output

MARKER = "sdshape-site.json"
GENERATOR = "sdshape publish"
VENDORED = ("vendor/uplot/uPlot.iife.min.js", "vendor/uplot/uPlot.min.css", "vendor/uplot/LICENSE")
OWN_ASSETS = ("dashboard/dashboard.js", "dashboard/dashboard.css")
RENAME_EXCHANGE = 2
AT_FDCWD = -100


def is_site(folder: Path) -> bool:
    try:
        return json.loads((folder / MARKER).read_text()).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


def check_replaceable(folder: Path) -> None:
    """``--out`` may be written: new, empty, or a site this command wrote; else a one-line usage error."""
    try:
        if folder.is_dir() and any(folder.iterdir()) and not is_site(folder):
            raise UsageError(
                f"--out {folder}: is a folder sdshape publish did not write (no {MARKER} in it); "
                "give a new or empty folder, or an earlier site"
            )
    except OSError as error:
        raise UsageError(f"--out {folder}: cannot use this path ({error.strerror or error})") from None


def _assets(folder: Path) -> None:
    data = resources.files("sdshape.data")
    for name in (*VENDORED, *OWN_ASSETS):
        target = "uPlot.LICENSE" if name.endswith("LICENSE") else name.rsplit("/", 1)[-1]
        write_output(folder / "assets" / target, data.joinpath(name).read_bytes())


def _readable(folder: Path) -> None:
    """Files and folders readable as the umask allows (the temporary files are made 0600; a web server
    running as another user must read the site)."""
    mask = os.umask(0)
    os.umask(mask)
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2); False where that is not available."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name, use_errno=True) if name else None
    function = getattr(libc, "renameat2", None)
    if function is None:
        return False
    done = function(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    return done == 0


def swap_in(staging: Path, target: Path) -> None:
    """``staging`` becomes ``target``; the old ``target`` (if any) is removed after."""
    if not target.exists():
        os.rename(staging, target)
        return
    if _exchange(staging, target):
        shutil.rmtree(staging)  # it now holds the old site
        return
    old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old."))
    os.rename(target, old / "site")
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(old / "site", target)
        raise
    shutil.rmtree(old)


def write_site(documents: list[dict[str, Any]], about: dict[str, Any], out: Path) -> Path:
    """The whole site in ``out``: index.html, series/ID.html, assets/, data/timelines.json, the marker."""
    check_replaceable(out)
    parent = make_folder(out.absolute().parent)
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.", suffix=".building"))
    try:
        for name in ("assets", "series", "data"):
            make_folder(staging / name)
        _assets(staging)
        for document in documents:
            write_output(staging / "series" / f"{document['id']}.html", series_page(document, about))
        write_output(staging / "index.html", index_page(documents, filter_choices(documents), about))
        everything = {"about": about, "timelines": documents}
        write_output(staging / "data" / "timelines.json", standard_json(everything, indent=None))
        marker = {"generator": GENERATOR, **about, "timelines": len(documents)}
        write_output(staging / MARKER, standard_json(marker))
        _readable(staging)
        check_replaceable(out)  # again: the folder may have been filled while the site was built
        swap_in(staging, out)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise WriteError(f"could not write the site {out} ({type(error).__name__}: {error})") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
