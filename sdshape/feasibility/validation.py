"""Calibrate on the GPU runs and public figures on file, validate by class, and print each figure beside its
projection. ``maintainer/validate_projections.py`` and CI call :func:`main`.

The targets, per class (resident, offload, format, batch): time figures' median error 25% or less and none
off by more than 2x; memory figures whose counter is known within 15%; every published OOM predicted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from functools import cache
from pathlib import Path
from typing import Any

from sdshape.feasibility.agreement import allocator_rows, validate
from sdshape.feasibility.calibration import Conditions, calibrate, gpu_results, measured_loops
from sdshape.feasibility.catalog import load_catalog
from sdshape.feasibility.figures import public_figures
from sdshape.feasibility.formats import weight_format
from sdshape.feasibility.static import ShapeStatic, static_shape, with_tiled_decode
from sdshape.models.zoo import all_shapes
from sdshape.result.output import write_atomic

ROOT = Path(__file__).resolve().parents[2]
GPU_RUNS = ROOT / "tests" / "data" / "gpu-runs"
MODEL_FILE = ROOT / "sdshape" / "data" / "time_model.json"
TIME_MEDIAN_TARGET, TIME_MAX_TARGET, MEMORY_TARGET = 0.25, 1.0, 0.15


@cache
def _traced(shape: str, resolution: int, precision: str, batch: int, vae_fp16: bool, tiled: bool) -> ShapeStatic:
    """One trace per compute dtype (``precision`` is the plain format of that dtype): its variants hold every
    weight format of the dtype, so the figures' formats share it, as ``fit``'s traces do."""
    fmt = weight_format(precision)
    spec = all_shapes()[shape]
    static = static_shape(spec, resolution, 1, batch, fmt, vae_fp16=vae_fp16)
    return with_tiled_decode(static, spec, fmt, vae_fp16) if tiled else static


PLAIN = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def static_of(conditions: Conditions) -> ShapeStatic:
    fmt = weight_format(conditions.precision)
    if conditions.quantized is not None:
        fmt = dataclasses.replace(fmt, kinds=conditions.quantized)
    plain = PLAIN[str(fmt.compute_dtype).removeprefix("torch.")]
    base = _traced(conditions.shape, conditions.resolution, plain, conditions.batch, conditions.vae_fp16,
                   conditions.tiled)  # fmt: skip
    return base.as_format(fmt, conditions.keep_fp32)


def run(write: bool) -> dict[str, Any]:
    catalog = load_catalog()
    figures = public_figures()
    results = gpu_results(GPU_RUNS)
    model = calibrate(figures, measured_loops(results, catalog), static_of, catalog)
    memory_files = [r for r in results if r.path.name in ("sd15-eager-fp16.json", "sdxl-eager-fp16.json")]
    report = validate(figures, model, static_of, catalog, allocator_rows(memory_files, static_of))
    spread = calibration_spread(figures, model)
    if spread:  # a policy solved on several machines: their disagreement is part of its band
        band = report["classes"]["offload"]["band"] or [1.0, 1.0]
        report["classes"]["offload"]["band"] = [min(band[0], *spread), max(band[1], *spread)]
        report["classes"]["offload"]["calibration_spread"] = spread
    for name, summary in report["classes"].items():
        if summary["band"] is None:
            continue
        model.bands[name] = tuple(summary["band"])  # type: ignore[assignment]
        model.band_sources[name] = (
            f"{name}: measured over projected seconds across {summary['time_n']} validation figures "
            f"(median error {summary['time_median_error']:.0%}, largest {summary['time_max_error']:.0%})"
            + (
                ", widened to the spread of the figures model offload's rate was solved on"
                if name == "offload" and spread
                else ""
            )
        )
    report["model"] = model.to_json()
    report["missed"] = missed_targets(report)
    if write:
        write_atomic(MODEL_FILE, json.dumps(model.to_json(), indent=1) + "\n")
    return report


def calibration_spread(figures: list, model: Any) -> list[float]:
    """Measured over projected seconds of the figures a link rate was solved on, where a rate has several."""
    from sdshape.feasibility.calibration import projected_value

    catalog = load_catalog()
    ratios = []
    for policy in model.links:
        mine = [f for f in figures if f.role == "calibration" and f.calibrates == "link" and f.policy == policy]
        if len(mine) > 1:
            ratios += [f.value / projected_value(f, model, static_of, catalog) for f in mine]
    return ratios


def missed_targets(report: dict[str, Any]) -> list[str]:
    missed = []
    for name, s in report["classes"].items():
        if s["time_n"] and s["time_median_error"] > TIME_MEDIAN_TARGET:
            missed.append(f"{name}: time median error {s['time_median_error']:.0%} > {TIME_MEDIAN_TARGET:.0%}")
        if s["time_n"] and s["time_max_error"] > TIME_MAX_TARGET:
            missed.append(f"{name}: a time figure off by {1 + s['time_max_error']:.2f}x > {1 + TIME_MAX_TARGET:.0f}x")
        if s["memory_n"] and s["memory_max_error"] > MEMORY_TARGET:
            missed.append(f"{name}: a memory figure off by {s['memory_max_error']:.1%} > {MEMORY_TARGET:.0%}")
        if s["oom_missed"]:
            missed.append(f"{name}: {s['oom_missed']} published OOM(s) not predicted")
    return missed


def replace_between(path: Path, name: str, text: str) -> None:
    """Replace what lies between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in a docs page."""
    page = path.read_text()
    start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
    if start not in page or end not in page:
        raise SystemExit(f"{path}: no {start.strip()} ... {end} markers")
    head, rest = page.split(start, 1)
    _, tail = rest.split(end, 1)
    write_atomic(path, head + start + text + end + tail)


UNITS = {"loop_it_s": "it/s", "e2e_s": "s", "oom": "OOM"}


def _shown(row: dict[str, Any], key: str) -> str:
    if row["kind"] == "oom":
        return "OOM" if row[key] == 1.0 else "fits"
    return f"{row[key]:.2f} {UNITS.get(row['kind'], 'GiB')}"


def print_report(report: dict[str, Any]) -> None:
    print(f"{'figure':<44} {'gpu':<14} {'class':<15} {'measured':>11} {'projected':>11} {'error':>7}")
    for row in report["rows"]:
        error = "in range" if "range" in row and row["error"] == 0 else f"{row['error']:.0%}"
        print(f"{row['id'][:44]:<44} {row['gpu'][:14]:<14} {'+'.join(row['classes'])[:15]:<15} "
              f"{_shown(row, 'value'):>11} {_shown(row, 'projected'):>11} {error:>7}")  # fmt: skip
    print()
    print(f"{'class':<10} {'time n':>6} {'median':>7} {'largest':>8} {'band':>12} {'memory n':>8} {'largest':>8} "
          f"{'ranged':>7} {'OOMs':>5}")  # fmt: skip
    for name, s in report["classes"].items():
        band = f"{s['band'][0]:.2f}-{s['band'][1]:.2f}" if s["band"] else "-"
        print(f"{name:<10} {s['time_n']:>6} {_pct(s['time_median_error']):>7} {_pct(s['time_max_error']):>8} "
              f"{band:>12} {s['memory_n']:>8} {_pct(s['memory_max_error']):>8} "
              f"{s['ranged_n'] - s['ranged_outside']}/{s['ranged_n']:<5} "
              f"{s['oom_n'] - s['oom_missed']}/{s['oom_n']}")  # fmt: skip
    for line in report["missed"]:
        print(f"target missed: {line}")


def markdown(report: dict[str, Any]) -> str:
    """The validation as the docs publish it: the per-class summary, then every figure with its conditions."""
    lines = [
        "| class | time figures | median error | largest | band (measured/projected) | memory figures (counter known) "
        "| largest | ranged figures in range | OOMs predicted |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in report["classes"].items():
        band = f"{c['band'][0]:.2f}-{c['band'][1]:.2f}" if c["band"] else "-"
        lines.append(
            f"| {name} | {c['time_n']} | {_pct(c['time_median_error'])} | {_pct(c['time_max_error'])} | {band} "
            f"| {c['memory_n']} | {_pct(c['memory_max_error'])} | {c['ranged_n'] - c['ranged_outside']} of "
            f"{c['ranged_n']} | {c['oom_n'] - c['oom_missed']} of {c['oom_n']} |"
        )
    lines += ["", "| figure | GPU | conditions | class | measured | projected | error | source |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in report["rows"]:
        conditions = [f"{row['shape']} {row['resolution']} px, {row['steps']} steps"]
        if row.get("batch", 1) > 1:
            conditions.append(f"batch {row['batch']}")
        conditions.append(
            row.get("precision", "fp16") + (f" ({'+'.join(row['quantized'])})" if row.get("quantized") else "")
        )
        if row.get("policy", "all_resident") != "all_resident":
            conditions.append(row["policy"])
        if row.get("vae_tiling"):
            conditions.append("VAE slicing")
        conditions.append(row["backend"])
        if row["kind"] in ("peak_gib", "weights_gib", "peak_allocated_gib", "allocated_peak_gib"):
            conditions.append(
                f"{'after load' if row['kind'] == 'weights_gib' else 'peak'}, {row.get('counter', 'allocated')}"
            )
        error = "in range" if "range" in row and row["error"] == 0 else f"{row['error']:.0%}"
        lines.append(
            f"| {row['id']} | {row['gpu']} | {', '.join(conditions)} | {'+'.join(row['classes'])} "
            f"| {_shown(row, 'value')} | {_shown(row, 'projected')} | {error} | {row['source']} |"
        )
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--write", action="store_true", help="rewrite sdshape/data/time_model.json from this calibration"
    )
    parser.add_argument("--json", type=Path, help="also write the validation table here")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed (CI)")
    parser.add_argument("--markdown", type=Path, help="replace the validation tables in this Markdown file")
    parser.add_argument("--readme", type=Path, help="replace the per-class summary in this Markdown file")
    args = parser.parse_args(argv)
    report = run(args.write)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")
    if args.markdown:
        replace_between(args.markdown, "validation", markdown(report))
    if args.readme:
        replace_between(args.readme, "validation-summary", markdown(report).split("\n\n")[0] + "\n")
    return 1 if (report["missed"] and args.check) else 0
