"""Run a recorded ``sdshape run`` command again, in its own process, and store what it writes.

``compare --confirm``, ``history --confirm`` and ``sdshape bisect`` rerun the command a series' rows
recorded (``sdshape.cli.recorded``). Each rerun writes its document to a fresh file under the folder
given (never over another) and ingests it into the store, as ``sdshape run --json PATH --store URL``
does: a confirmation run is kept like any run. The interpreter is a parameter: bisect runs the same
command in each candidate environment's own Python.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from sdshape.core.errors import UsageError
from sdshape.result.io import ResultFile, load


def fresh_path(folder: Path, stem: str) -> Path:
    """A file name under ``folder`` that no file has yet: the UTC time, the stem, and -2, -3... if taken."""
    folder.mkdir(parents=True, exist_ok=True)
    base = f"{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S')}-{stem}"
    for attempt in range(1, 10_000):
        path = folder / (f"{base}.json" if attempt == 1 else f"{base}-{attempt}.json")
        if not path.exists() and not path.with_suffix(".log").exists():
            return path
    raise RuntimeError(f"no free file name for {base} in {folder}")


def rerun_argv(command: list[str], json_path: Path, store: str, python: str) -> list[str]:
    """The rerun's argument list: the recorded command, then its output file and the store (a bare
    ``--store``, the default store, goes last so that it takes no value)."""
    if not command or command[0] != "run":
        raise UsageError(f"a recorded command must start with `run`, got {command!r}")
    store_args = ["--store", store] if store else ["--store"]
    return [python, "-m", "sdshape.cli", *command, "--json", str(json_path), *store_args]


def run_recorded(
    command: list[str],
    folder: Path,
    store: str,
    stem: str = "confirm",
    python: str = sys.executable,
    environment: Mapping[str, str] | None = None,
) -> ResultFile:
    """Run ``command`` once more; its results, read back. The process's output goes to a log beside the
    JSON file. A rerun that writes no results is a one-line error naming the log."""
    json_path = fresh_path(Path(folder), stem)
    log_path = json_path.with_suffix(".log")
    argv = rerun_argv(command, json_path, store, python)
    with open(log_path, "w") as log:
        log.write(" ".join(argv) + "\n")
        log.flush()
        done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=dict(environment or os.environ))
    if not json_path.is_file():
        last = (log_path.read_text(errors="replace").strip().splitlines() or ["(no output)"])[-1]
        raise UsageError(f"the rerun exited {done.returncode} and wrote no results: {last} (log: {log_path})")
    return load(json_path)
