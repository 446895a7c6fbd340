"""``sdshape run``: the main job; measure, print the tables, write the results."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console

from sdshape.errors import UsageError


def _check_writable(path: str) -> Path:
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise UsageError(f"--json {path}: is a directory; give a file path")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"--json {path}: cannot write there (directory {parent} missing or not writable)")
    if target.exists() and not os.access(target, os.W_OK):
        raise UsageError(f"--json {path}: file exists and is not writable")
    return target


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from sdshape.run_options import plan_from

    plan = plan_from(vars(args))
    json_path = _check_writable(args.json_path) if args.json_path else None
    errors = Console(stderr=True)
    for note in plan.notes:
        errors.print(f"sdshape: {note}", highlight=False)

    from sdshape.document import benchmark_entry, document
    from sdshape.progress import make_progress
    from sdshape.session import run_backends
    from sdshape.table import print_comparison, print_report
    from sdshape.vocabulary import STAGES

    benchmarks: list[dict[str, Any]] = []
    environment: dict[str, Any] = {}

    def collect(session: Any) -> None:
        benchmarks.extend(benchmark_entry(session, session.outcomes[stage]) for stage in STAGES)
        environment.update(session.environment)

    with make_progress(errors) as progress:
        run_backends(plan, progress, on_session=collect)
    doc = document(benchmarks, environment)
    for backend in dict.fromkeys(b["extra_info"]["backend"] for b in benchmarks):
        print_report([b for b in benchmarks if b["extra_info"]["backend"] == backend], console)
    print_comparison(benchmarks, console)
    if json_path is not None:
        json_path.write_text(json.dumps(doc, indent=2))
        console.print(f"results written to {json_path}", highlight=False)
    if args.save:
        from sdshape.saving import save

        saved = save(
            doc,
            Path(args.results_dir),
            plan.shape if plan.weights is None else f"weights-{plan.weights.name}",
            plan.backends,
            plan.precision,
        )
        console.print(f"results saved to {saved}", highlight=False)
    failed = [b for b in benchmarks if b["extra_info"]["status"] != "ok"]
    if failed:
        console.print(f"[red]{len(failed)} stage(s) did not complete; their rows keep status and message[/red]")
    return 0
