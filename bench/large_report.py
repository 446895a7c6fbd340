"""How long ``sdshape report`` takes on one results file of 10,000 rows.

    python bench/large_report.py [--rows 10000] [--repeat 3] [--json OUT]

The rows are 2,500 copies of the committed four-stage SD 1.5 CPU run, each with its own step count (so
each is a run of its own, as a fleet's file of many configurations holds); the report is the CLI's own,
run as a separate process, timed as a whole (start-up and imports included).
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from store_benchmark import cpu_model  # bench/ is the script's own folder: one CPU label for every benchmark

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "results" / "cpu-amd-epyc" / "2026-11-22-sd15-eager-fp32.json"


def make_results(path: Path, runs: int) -> int:
    """A results file of ``runs`` runs of the template, run ``i`` at ``i + 1`` steps; returns its rows."""
    document = json.loads(TEMPLATE.read_text())
    template = document["benchmarks"]
    rows = []
    for index in range(runs):
        steps = index + 1
        for bench in template:
            row = copy.deepcopy(bench)
            row["extra_info"]["steps"] = row["extra_info"]["id"]["steps"] = steps
            row["name"] = row["name"].replace("3steps", f"{steps}steps")
            rows.append(row)
    document["benchmarks"] = rows
    path.write_text(json.dumps(document))
    return len(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows (a multiple of 4)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        results = Path(folder) / "results.json"
        rows = make_results(results, args.rows // 4)
        seconds = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "sdshape.cli", "report", str(results), "--out", f"{folder}/report"],
                capture_output=True, text=True,
            )  # fmt: skip
            seconds.append(time.perf_counter() - started)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    figures = {
        "rows": rows,
        "report_s": round(statistics.median(seconds), 2),
        "report_s_each": [round(s, 2) for s in seconds],
        "peak_rss_mib": round(peak / 2**20),
        "cpu": cpu_model(),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
