"""How fast the store takes and gives back results: 10,000 rows with their rounds into SQLite, then
``history`` over them.

    python bench/store_benchmark.py [--rows 10000] [--store PATH] [--json OUT]

The rows are 2,500 copies of a committed four-stage tiny run (10 rounds a row), each at its own time
and on one of 25 machines, as a fleet's files would be; ingest is ``sdshape store add``'s (one
transaction per file), history the whole store's as ``history --store`` reads it (its history
columns), charts and Markdown left out (``collect`` only).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from sdshape.regression.history import collect
from sdshape.regression.points import stored_observations
from sdshape.store.db import open_store
from sdshape.store.ingest import add_file

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "results" / "examples" / "threads" / "1-two-threads.json"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def make_files(folder: Path, count: int) -> list[Path]:
    template = json.loads(TEMPLATE.read_text())
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    made = []
    for index in range(count):
        template["datetime"] = (start + dt.timedelta(hours=index)).isoformat()
        template["machine_info"]["cpu_model"] = f"machine {index % 25}"
        path = folder / f"run-{index:05d}.json"
        path.write_text(json.dumps(template))
        made.append(path)
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--store", help="SQLite path or postgresql:// URL (default: a fresh temporary file)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        files = make_files(Path(folder), args.rows // 4)
        engine = open_store(args.store or Path(folder) / "store.sqlite")
        started = time.perf_counter()
        for path in files:
            add_file(engine, path)
        ingest_s = time.perf_counter() - started
        started = time.perf_counter()
        timelines = collect(stored_observations(engine))
        history_s = time.perf_counter() - started
    figures = {
        "measured": dt.date.today().isoformat(),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "store": "postgresql" if (args.store or "").startswith("postgres") else "sqlite",
        "rows": len(files) * 4,
        "rounds": len(files) * 40,
        "files": len(files),
        "ingest_s": round(ingest_s, 2),
        "history_s": round(history_s, 2),
        "timelines": len(timelines),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
