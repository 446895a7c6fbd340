"""How well history and compare --store detect steps, on labelled series (sdshape.regression.detection).

    python bench/detection.py                      # the table at the defaults, on the held-out seed
    python bench/detection.py --tune               # the sweep on the tuning seed, then the table
    python bench/detection.py --runs-needed        # also: how many runs history needs at eager's noise

Noise sources: three models of a GPU's runs (compiled with CUDA graphs, eager GPU-bound, eager host-bound;
their run-to-run and within-run sizes from the H200 A/A runs, results/h200-aa-2026-12-04, which this
script re-reads and prints beside the H100's) and three recorded sources resampled (the H200's eager
denoise loop and VAE decode, this CPU's A/A denoise loop). Steps of 0 (none), 2, 5, 10 and 25% planted at
a random run of a 20-run series. Writes ``detection.json`` (every count, the settings, seeds, machine,
date) under ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import platform
import random
import statistics as st
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from unittest import mock

from sdshape.regression import compare, history
from sdshape.regression.detection import (
    ALERTS,
    DETECTORS,
    GPU_MODELS,
    Settings,
    evaluate,
    iqr,
    planted,
    points_of,
    recorded,
    timeline_of,
)  # fmt: skip
from sdshape.result.io import load
from sdshape.result.output import standard_json, write_atomic

ROOT = Path(__file__).resolve().parent.parent
H200 = ROOT / "results/h200-aa-2026-12-04/runs"
H100 = ROOT / "tests/data/gpu-runs/2026-11-22-h100"
CPU = ROOT / "results/cpu-amd-epyc/false-alarms/runs"
SIZES = (0.0, 0.02, 0.05, 0.10, 0.25)
TUNE_SEED, REPORT_SEED = 1, 2
TARGET_RECALL, TARGET_FALSE = 0.90, 0.02


def sources() -> list:
    return [
        *GPU_MODELS,
        recorded("recorded: H200 eager denoise_loop", sorted(H200.glob("eager-*.json")), "denoise_loop",
                 "13 A/A runs, results/h200-aa-2026-12-04"),
        recorded("recorded: H200 eager vae_decode", sorted(H200.glob("eager-*.json")), "vae_decode",
                 "13 A/A runs, results/h200-aa-2026-12-04"),
        recorded("recorded: CPU denoise_loop", sorted(CPU.glob("run-*.json")), "denoise_loop",
                 "30 A/A runs of the tiny shape, results/cpu-amd-epyc/false-alarms"),
    ]  # fmt: skip


def noise_figures() -> dict:
    """Per file set and stage: run-to-run CV of the run medians and mean within-run IQR/median."""
    sets = {
        "H200 eager (13 runs)": sorted(H200.glob("eager-*.json")),
        "H200 compile:reduce-overhead (4 runs)": sorted(H200.glob("compile-*.json")),
        "H100 SD 1.5 fp16, 50 steps (8 files)": [
            p for p in sorted(H100.glob("*.json")) if "fp16" in p.name and "sd15" in p.name
        ],
    }
    figures = {}
    for name, paths in sets.items():
        per: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for path in paths:
            for row in load(path).rows.values():
                if row.status == "ok" and len(row.rounds) > 1:
                    m = st.median(row.rounds)
                    per.setdefault((str(row.id.as_dict().get("backend")), row.stage), []).append(
                        (m, iqr(row.rounds) / m)
                    )
        for (backend, stage), runs in per.items():
            medians = [m for m, _ in runs]
            figures[f"{name}: {backend} {stage}"] = {
                "runs": len(runs),
                "run_to_run_cv": st.stdev(medians) / st.mean(medians) if len(runs) > 1 else None,
                "within_iqr_over_median": st.mean(r for _, r in runs),
            }
    return figures


@contextmanager
def constants(z_min: float, min_after: int, run_to_run_z: float):
    """history's Z_MIN and MIN_RUNS_AFTER and compare's RUN_TO_RUN_Z for the sweep (module constants)."""
    with (
        mock.patch.object(history, "Z_MIN", z_min),
        mock.patch.object(history, "MIN_RUNS_AFTER", min_after),
        mock.patch.object(compare, "RUN_TO_RUN_Z", run_to_run_z),
    ):
        yield


def table(noises: list, count: int, seed: int, settings: Settings) -> dict:
    return {
        noise.name: {f"{size:.0%}": {d: s.as_dict() for d, s in evaluate(noise, size, count, seed, settings).items()}
                     for size in SIZES}
        for noise in noises
    }  # fmt: skip


def meets(cell: dict, noise: str, detector: str) -> bool:
    """90% of 5% steps found, at most 2% of alerts false (over the step sizes of 2% and more)."""
    five = cell[noise]["5%"][detector]
    true = sum(cell[noise][k][detector]["true"] for k in ("2%", "5%", "10%", "25%"))
    false = sum(cell[noise][k][detector]["false"] for k in ("0%", "2%", "5%", "10%", "25%"))
    return (five["recall"] or 0) >= TARGET_RECALL and false <= TARGET_FALSE * max(true + false, 1)


def tune(count: int, grid: list[tuple[float, float, int, float]]) -> list[dict]:
    """history's floor, Z_MIN and MIN_RUNS_AFTER, and compare's floor and RUN_TO_RUN_Z, on TUNE_SEED: each
    setting's recall of 5% steps and false alerts per series on every source."""
    noises = sources()
    rows = []
    for floor, z_min, min_after, run_to_run in grid:
        settings = Settings(floor=floor, run_to_run=run_to_run, time_floor=floor)
        with constants(z_min, min_after, compare.RUN_TO_RUN_Z):
            cells = {n.name: {f"{s:.0%}": {d: v.as_dict() for d, v in evaluate(
                n, s, count, TUNE_SEED, settings, detectors=("history, whole", "history, CI")).items()}
                for s in (0.0, 0.05)} for n in noises}  # fmt: skip
        rows.append({"floor": floor, "z_min": z_min, "min_runs_after": min_after, "run_to_run": run_to_run,
                     "cells": cells})  # fmt: skip
        print(f"tune floor {floor} z {z_min} after {min_after} run-to-run {run_to_run}: " + "; ".join(
            f"{n}: R5 {c['5%']['history, CI']['recall']:.2f} F0 {c['0%']['history, CI']['false_per_series']:.2f}"
            for n, c in cells.items()), file=sys.stderr, flush=True)  # fmt: skip
    return rows


def tune_compare(count: int) -> list[dict]:
    """compare's time floor and RUN_TO_RUN_Z on TUNE_SEED: recall of 5% steps and false alerts per series."""
    noises = [*sources()[:2], sources()[4]]  # where a 5% step stands above the noise at all
    rows = []
    for floor, z in itertools.product((0.03, 0.05), (3.0, 4.0, 5.0)):
        with constants(history.Z_MIN, history.MIN_RUNS_AFTER, z):
            settings, only = Settings(time_floor=floor), ("compare, CI",)
            cells = {n.name: {f"{s:.0%}": evaluate(n, s, count, TUNE_SEED, settings, detectors=only)[only[0]].as_dict()
                              for s in (0.0, 0.05)} for n in noises}  # fmt: skip
        rows.append({"time_floor": floor, "run_to_run_z": z, "cells": cells})
        print(f"tune compare floor {floor} z {z}: " + "; ".join(
            f"{n}: R5 {c['5%']['recall']:.2f} F0 {c['0%']['false_per_series']:.2f} P5 {c['5%']['precision']}"
            for n, c in cells.items()), file=sys.stderr, flush=True)  # fmt: skip
    return rows


def runs_needed(count: int, seed: int) -> dict:
    """history, whole series, the step in the middle, as the series grows: recall of 5% steps within 1 run
    of the step and within 5% of the series' length (a long series places a small step less exactly), and
    alerts per step-free series, at the host-bound eager model and the recorded H200 eager loop."""
    found = {}
    for noise in (GPU_MODELS[2], sources()[3]):
        for length in (20, 50, 100, 200, 400, 800, 1600):
            rng = random.Random(f"{seed}:{noise.name}:{length}")
            near = wide = false = 0
            for _ in range(count):
                stepped = planted(noise, rng, 0.05, length, at=length // 2)
                steps = timeline_of(points_of(stepped.runs), Settings()).steps
                places = [s.after - (length // 2 - 1) for s in steps if s.verdict == "regression"]
                near += any(abs(p) <= 1 for p in places)
                wide += any(abs(p) <= max(1, length // 20) for p in places)
                clean = planted(noise, rng, 0.0, length)
                false += sum(s.verdict in ALERTS for s in timeline_of(points_of(clean.runs), Settings()).steps)
            found[f"{noise.name}: {length} runs"] = {
                "recall_5%_within_1_run": near / count, "recall_5%_within_5%_of_length": wide / count,
                "alerts_per_step_free_series": false / count,
            }  # fmt: skip
            print(f"{noise.name} {length}: {found[f'{noise.name}: {length} runs']}", file=sys.stderr, flush=True)
    return found


def machine() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {len(__import__('os').sched_getaffinity(0))} cores"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def format_table(cells: dict) -> str:
    lines = ["| noise | detector | false alerts per step-free series | " + " | ".join(
        f"{k} P / R / F1" for k in ("2%", "5%", "10%", "25%")) + " | false alerts with a step: misplaced / all |",
        "|---" * 8 + "|"]  # fmt: skip

    def cell(score: dict) -> str:
        return " / ".join("-" if score[k] is None else f"{score[k]:.2f}" for k in ("precision", "recall", "f1"))

    for noise, by_size in cells.items():
        for detector in DETECTORS:
            free = by_size["0%"][detector]["false_per_series"]
            sizes = " | ".join(cell(by_size[k][detector]) for k in ("2%", "5%", "10%", "25%"))
            stepped = [by_size[k][detector] for k in ("2%", "5%", "10%", "25%")]
            misplaced = f"{sum(c['misplaced'] for c in stepped)} / {sum(c['false'] for c in stepped)}"
            lines.append(f"| {noise} | {detector} | {free:.3f} | {sizes} | {misplaced} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400, help="series per noise source and step size (400)")
    parser.add_argument("--tune", action="store_true", help="sweep the thresholds on the tuning seed first")
    parser.add_argument("--tune-count", type=int, default=80, help="series per cell in the sweep (80)")
    parser.add_argument("--floors", type=float, nargs="+", default=[0.03, 0.035, 0.04, 0.05], help="STEP_FLOOR")
    parser.add_argument("--z-mins", type=float, nargs="+", default=[4.0, 4.5, 5.0], help="Z_MIN values to sweep")
    parser.add_argument("--min-after", type=int, nargs="+", default=[2, 3], help="MIN_RUNS_AFTER values to sweep")
    parser.add_argument("--run-to-run", type=float, nargs="+", default=[0.01], help="RUN_TO_RUN values to sweep")
    parser.add_argument("--runs-needed", action="store_true", help="history's recall as the series grows")
    parser.add_argument("--out", default="results/cpu-amd-epyc/detection", help="folder for detection.json")
    args = parser.parse_args()
    started = time.perf_counter()
    settings = Settings()
    report: dict = {
        "measured": dt.date.today().isoformat(), "machine": machine(), "python": platform.python_version(),
        "seeds": {"tune": TUNE_SEED, "report": REPORT_SEED}, "series_per_cell": args.count,
        "defaults": {**asdict(settings), "z_min": history.Z_MIN, "min_runs_after": history.MIN_RUNS_AFTER,
                     "run_to_run_z": compare.RUN_TO_RUN_Z},
        "noise_models": [asdict(m) for m in GPU_MODELS], "noise_figures": noise_figures(),
    }  # fmt: skip
    if args.tune:
        grid = list(itertools.product(args.floors, args.z_mins, args.min_after, args.run_to_run))
        report["tuning"] = tune(args.tune_count, grid)
        report["tuning_compare"] = tune_compare(args.tune_count)
    report["table"] = table(sources(), args.count, REPORT_SEED, settings)
    report["targets_met"] = {n: {d: meets(report["table"], n, d) for d in DETECTORS} for n in report["table"]}
    if args.runs_needed:
        report["runs_needed"] = runs_needed(min(args.count, 200), REPORT_SEED)
    report["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "detection.json", standard_json(report) + "\n")
    print(format_table(report["table"]))
    print(json.dumps(report["targets_met"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
