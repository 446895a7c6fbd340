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

    from sdshape.campaign import Campaign
    from sdshape.progress import make_progress
    from sdshape.result.document import document
    from sdshape.tables import print_allocation, print_backends

    results: list[Any] = []
    environment: dict[str, Any] = {}

    def collect(session_results: list[Any], session_environment: dict[str, Any]) -> None:
        results.extend(session_results)
        environment.update(session_environment)

    with make_progress(errors) as progress:
        Campaign(plan, progress).run(on_session=collect)
    doc = document(results, environment)
    for backend in dict.fromkeys(result.id.backend for result in results):
        print_allocation([result for result in results if result.id.backend == backend], console)
    print_backends(results, console)
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
    failed = [result for result in results if result.status != "ok"]
    if failed:
        console.print(f"[red]{len(failed)} stage(s) did not complete; their rows keep status and message[/red]")
    return 0
