"""``sdshape compare``, ``history`` and ``report``: they read result files only, and never import torch."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from sdshape.core.errors import UsageError


def _check_fractions(args: argparse.Namespace, *names: str) -> None:
    """Thresholds are fractions (0.05 = 5%); a percentage or a negative number is a usage error."""
    for name in names:
        value = getattr(args, name)
        if not 0 <= value < 10:
            raise UsageError(f"--{name.replace('_', '-')} must be a fraction such as 0.05, got {value}")


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from sdshape.present.compare_table import print_verdicts
    from sdshape.regression import compare
    from sdshape.result import io

    _check_fractions(args, "threshold", "memory_threshold", "energy_threshold")
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha must be a significance level between 0 and 1 such as 0.05, got {args.alpha}")
    floors = compare.Floors(args.threshold, args.memory_threshold, args.energy_threshold, args.alpha)
    thresholds = compare.load_thresholds(args.thresholds, floors) if args.thresholds else compare.Thresholds(floors)
    base, new = io.load(args.base), io.load(args.new)
    results = compare.compare_files(base, new, thresholds)
    environment = compare.environment_diff(base, new)
    if args.json:
        print(json.dumps([result.to_json() for result in results], indent=2, default=str))
    else:
        print_verdicts(results, environment, base, new, console)
    return 1 if compare.failing(results) else 0


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from sdshape.present.report import write

    gpus = [name.strip() for name in args.gpus.split(",") if name.strip()] if args.gpus else None
    markdown_path, html_path = write(args.results, Path(args.out), gpus, args.gpu_catalog)
    console.print(f"report written: {markdown_path} and {html_path}", highlight=False)
    return 0


def cmd_history(args: argparse.Namespace, console: Console) -> int:
    from sdshape.regression.history import write_report

    _check_fractions(args, "threshold", "run_to_run")
    report, series = write_report(Path(args.dir), Path(args.out), args.gpu, args.threshold, args.run_to_run)
    steps = sum(len(s.steps) for s in series)
    console.print(f"{len(series)} series, {steps} step(s) found; report: {report}", highlight=False)
    return 0
