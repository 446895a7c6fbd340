"""The false-alarm rate of compare and history, measured: N runs of one tiny configuration with nothing
changed (an A/A test), then the same recorded rounds shifted by 3%, 5% and 10% from the middle on.

    python bench/false_alarms.py --runs 30 --out results/cpu-amd-epyc/false-alarms   # makes the runs
    python bench/false_alarms.py --from results/cpu-amd-epyc/false-alarms/runs        # reuses them

- compare, every pair (older as BASE, newer as NEW), every stage: how often it says regression (and
  improvement), at its defaults: on two bare files (rounds only), and as ``compare --store`` runs it,
  with each series' run-to-run sigma read from the store's history (here: the whole series).
- history as CI runs it, after each new run: on every prefix of the series with at least 8 runs, every
  stage's timeline: how often it says regression.
- detection: the rounds of runs from the middle on multiplied by 1 + shift; compare over the pairs that
  straddle the shift, history over the prefixes with at least two runs after it.

Writes ``false-alarms.json`` (every count, the machine, the date) beside the runs.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import platform
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path

from sdshape.regression.compare import Floors, Thresholds, compare_files
from sdshape.regression.history import MIN_RUNS_AFTER, RUN_TO_RUN, STEP_FLOOR, Z_MIN, collect, run_to_run_lookup
from sdshape.result.io import ResultFile, load

CONFIG = ["--shape", "tiny", "--device", "cpu", "--steps", "2", "--rounds", "20", "--warmup", "2", "--no-parity"]
SHIFTS = (0.03, 0.05, 0.10, 0.25)
MIN_PREFIX = 8


def make_runs(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for index in range(count):
        path = folder / f"run-{index:02d}.json"
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "sdshape.cli", "run", *CONFIG, "--json", str(path)], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"run {index} failed: {done.stderr[-2000:]}")
        print(f"run {index + 1}/{count}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        made.append(path)
    return made


def shifted(result: ResultFile, factor: float) -> ResultFile:
    """The same run with every round (and so every median and IQR) multiplied by ``factor``."""
    moved = copy.deepcopy(result)
    for row in moved.rows.values():
        row.timing.rounds_s = [value * factor for value in row.timing.rounds_s]
        if row.timing.stats is not None:
            stats = dict(row.timing.stats)
            for key in ("min", "max", "mean", "median", "q1", "q3", "iqr", "stddev"):
                if isinstance(stats.get(key), (int, float)):
                    stats[key] *= factor
            stats["data"] = list(row.timing.rounds_s)
            row.timing.stats = stats
    return moved


def compare_counts(runs: list[ResultFile], pairs: list[tuple[int, int]], history: bool = False) -> dict[str, int]:
    counts = {"comparisons": 0, "regression": 0, "improvement": 0}
    thresholds = Thresholds(Floors())
    noise = run_to_run_lookup(collect(runs)) if history else None
    for i, j in pairs:
        for verdict in compare_files(runs[i], runs[j], thresholds, noise):
            counts["comparisons"] += 1
            if verdict.verdict in ("regression", "improvement"):
                counts[verdict.verdict] += 1
    return counts


def history_counts(runs: list[ResultFile], prefixes: list[int], shift_at: int | None = None) -> dict[str, int]:
    """Per prefix and stage timeline: does history call a regression (at the shift, when there is one)?"""
    counts = {"timelines": 0, "regression": 0, "suspicious": 0, "at_the_shift": 0}
    for length in prefixes:
        for timeline in collect(runs[:length]):
            counts["timelines"] += 1
            verdicts = [s for s in timeline.steps if s.verdict == "regression"]
            counts["regression"] += bool(verdicts)
            counts["suspicious"] += any(s.verdict == "suspicious" for s in timeline.steps)
            counts["at_the_shift"] += any(s.after == shift_at - 1 for s in verdicts) if shift_at else 0
    return counts


def measure(runs: list[ResultFile]) -> dict:
    n = len(runs)
    pairs = list(combinations(range(n), 2))
    report = {
        "runs": n,
        "aa": {
            "compare": compare_counts(runs, pairs),
            "compare_with_history": compare_counts(runs, pairs, history=True),
            "history": history_counts(runs, list(range(MIN_PREFIX, n + 1))),
        },
        "shifted": {},
    }
    middle = n // 2
    for shift in SHIFTS:
        moved = runs[:middle] + [shifted(run, 1 + shift) for run in runs[middle:]]
        straddling = [(i, j) for i, j in pairs if i < middle <= j]
        prefixes = list(range(max(MIN_PREFIX, middle + 2), n + 1))
        report["shifted"][f"{shift:.0%}"] = {
            "compare": compare_counts(moved, straddling),
            "compare_with_history": compare_counts(moved, straddling, history=True),
            "history": history_counts(moved, prefixes, shift_at=middle),
        }
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="A/A runs to make (default 30)")
    parser.add_argument("--out", default="results/false-alarms", help="folder for the runs and the report")
    parser.add_argument("--from", dest="source", help="reuse the runs in this folder instead of making them")
    args = parser.parse_args()
    if args.source:
        paths = sorted(Path(args.source).glob("run-*.json"))
        out = Path(args.source).parent
    else:
        out = Path(args.out)
        paths = make_runs(out / "runs", args.runs)
    runs = [load(path) for path in paths]
    report = {
        "measured": dt.date.today().isoformat(),
        "machine": runs[0].gpu,
        "python": platform.python_version(),
        "config": " ".join(CONFIG),
        "defaults": {
            "compare": vars(Floors()),
            "history": {"z_min": Z_MIN, "floor": STEP_FLOOR, "run_to_run": RUN_TO_RUN, "runs_after": MIN_RUNS_AFTER},
        },
        **measure(runs),
    }
    (out / "false-alarms.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
