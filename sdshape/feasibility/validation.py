"""Calibrate on the GPU runs and public figures on file, validate, and print each figure beside its
projection. ``bench/validate_projections.py`` and CI call :func:`main`.

The targets (issue "Feasibility reports that hold"): time figures, median error under 20% and none off by
more than 1.6x; memory figures, each within 10%.
"""

from __future__ import annotations

import argparse
import json
import statistics
from functools import cache
from pathlib import Path
from typing import Any

from sdshape.feasibility.calibration import allocator_rows, calibrate, gpu_results, measured_loops, validate
from sdshape.feasibility.catalog import load_catalog
from sdshape.feasibility.figures import public_figures
from sdshape.feasibility.formats import weight_format
from sdshape.feasibility.static import ShapeStatic, static_shape
from sdshape.models.zoo import SHAPE_SPECS
from sdshape.result.output import write_atomic

ROOT = Path(__file__).resolve().parents[2]
GPU_RUNS = ROOT / "tests" / "data" / "gpu-runs"
MODEL_FILE = ROOT / "sdshape" / "data" / "time_model.json"
TIME_MEDIAN_TARGET, TIME_MAX_TARGET, MEMORY_TARGET = 0.20, 0.60, 0.10


@cache
def static_of(shape: str, resolution: int, precision: str, vae_fp16: bool) -> ShapeStatic:
    return static_shape(SHAPE_SPECS[shape], resolution, 1, 1, weight_format(precision), vae_fp16=vae_fp16)


def run(write: bool) -> dict[str, Any]:
    catalog = load_catalog()
    figures = public_figures()
    results = gpu_results(GPU_RUNS)
    model = calibrate(figures, measured_loops(results, catalog), static_of, catalog)
    memory_files = [r for r in results if r.path.name in ("sd15-eager-fp16.json", "sdxl-eager-fp16.json")]
    report = validate(figures, model, static_of, catalog, allocator_rows(memory_files, static_of))
    model.band = tuple(report["time"]["band"])  # type: ignore[assignment]
    model.band_source = (
        f"measured over projected seconds across {report['time']['n']} validation figures "
        f"(median error {report['time']['median_error']:.0%}, largest {report['time']['max_error']:.0%})"
    )
    report["model"] = model.to_json()
    if write:
        write_atomic(MODEL_FILE, json.dumps(model.to_json(), indent=1) + "\n")
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"{'figure':<48} {'gpu':<22} {'measured':>10} {'projected':>10} {'error':>7}")
    for row in report["rows"]:
        unit = {"loop_it_s": "it/s", "e2e_s": "s", "peak_allocated_gib": "GiB", "allocated_peak_gib": "GiB"}[
            row["kind"]
        ]
        print(f"{row['id'][:48]:<48} {row['gpu'][:22]:<22} {row['value']:>7.2f} {unit:<3}"
              f"{row['projected']:>7.2f} {unit:<3}{row['error']:>6.0%}")  # fmt: skip
    t, m = report["time"], report["memory"]
    print(f"time: {t['n']} figures, median error {t['median_error']:.0%}, largest {t['max_error']:.0%}; "
          f"band of measured/projected seconds {t['band'][0]:.2f} to {t['band'][1]:.2f}")  # fmt: skip
    print(f"memory: {m['n']} figures, median error {m['median_error']:.1%}, largest {m['max_error']:.1%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--write", action="store_true", help="rewrite sdshape/data/time_model.json from this calibration"
    )
    parser.add_argument("--json", type=Path, help="also write the validation table here")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed (CI)")
    args = parser.parse_args(argv)
    report = run(args.write)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    missed = []
    if report["time"]["median_error"] > TIME_MEDIAN_TARGET:
        missed.append(f"time median error {report['time']['median_error']:.0%} > {TIME_MEDIAN_TARGET:.0%}")
    if report["time"]["max_error"] > TIME_MAX_TARGET:
        missed.append(f"a time figure off by {1 + report['time']['max_error']:.2f}x > {1 + TIME_MAX_TARGET:.1f}x")
    if report["memory"]["max_error"] > MEMORY_TARGET:
        missed.append(f"a memory figure off by {report['memory']['max_error']:.1%} > {MEMORY_TARGET:.0%}")
    for line in missed:
        print(f"target missed: {line}")
    median = statistics.median(r["error"] for r in report["rows"])
    print(f"all figures: median error {median:.0%}")
    return 1 if (missed and args.check) else 0
