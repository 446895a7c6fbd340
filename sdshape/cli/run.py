"""``sdshape run``: the main job; measure, print the tables, write the results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from sdshape.core.errors import UsageError
from sdshape.result import output


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from sdshape.config.plan import plan_from

    json_path = output.file_target(args.json_path, "--json") if args.json_path is not None else None
    saving = args.save or (args.store is not None and args.json_path is None)  # the store indexes files
    results_dir = output.folder_target(args.results_dir, "--results-dir") if saving else None
    engine = None
    if args.store is not None:  # with the outputs: a missing, read-only or damaged store is refused now
        from sdshape.store.db import open_store

        engine = open_store(args.store or None)
    from sdshape.feasibility.preflight import check_fits

    plan = plan_from(vars(args))  # after the outputs: before it traces the shape on the meta device
    check_fits(plan)  # the static model's peak against the device's memory, before anything is allocated
    errors = Console(stderr=True)
    for note in plan.notes:
        errors.print(f"sdshape: {note}", highlight=False, soft_wrap=True)

    from sdshape.present.backends_table import print_backends
    from sdshape.present.tables import print_allocation
    from sdshape.result.document import document
    from sdshape.result.model import StageResult
    from sdshape.run.campaign import Campaign
    from sdshape.run.progress import make_progress

    results: list[StageResult] = []
    environment: dict[str, Any] = {}

    def collect(session_results: list[StageResult], session_environment: dict[str, Any]) -> None:
        results.extend(session_results)
        environment.update(session_environment)

    with make_progress(errors) as progress:
        Campaign(plan, progress).run(on_session=collect)
    if getattr(args, "argv", None):  # main() sets it; a rerun (compare --confirm, bisect) needs the command
        from sdshape.cli.recorded import recorded_command

        command = recorded_command(args.argv)
        for result in results:
            result.conditions.command = command
    doc = document(results, environment, plan.resolved_options())
    for backend in dict.fromkeys(result.id.backend for result in results):
        print_allocation([result for result in results if result.id.backend == backend], console)
    print_backends(results, console)
    text = output.standard_json(doc)
    lost = False
    written_files: list[Path] = []
    if json_path is not None:
        written, why = output.write_or_fall_back(json_path, text)
        lost |= why is not None
        written_files.append(written)
        say_written(console, "results written to", json_path, written, why)
    if results_dir is not None:
        from sdshape.result.output import save

        shape = plan.options.shape if plan.weights is None else f"weights-{plan.weights.name}"
        try:
            saved = save(doc, results_dir, shape, plan.backends, plan.options.precision, text=text)
            written_files.append(saved)
            console.print(f"results saved to {saved}", highlight=False)
        except OSError as error:
            written, _ = output.write_or_fall_back(output.fallback_path("save"), text)
            say_written(console, "results saved to", results_dir, written, f"{type(error).__name__}: {error}")
            lost = True
    if engine is not None:
        from sdshape.store.ingest import add_file

        for path in written_files[:1]:  # one file holds the run; a second copy would add nothing
            try:
                console.print(f"store: {add_file(engine, path).note}", highlight=False)
            except UsageError as error:  # a full disk, say: the results are in the file, not lost
                print(f"sdshape: {error}; the results are in {path}", file=sys.stderr)
                lost = True
    failed = [result for result in results if result.status != "ok"]
    if failed:
        console.print(f"[red]{len(failed)} stage(s) did not complete; their rows keep status and message[/red]")
    if len(failed) == len(results):
        return 1  # no stage completed: a failure of the model or the machine (the user's input was checked)
    return 1 if lost else 0


def say_written(console: Console, what: str, wanted: Path, written: Path, why: str | None) -> None:
    if why is None:
        console.print(f"{what} {written}", highlight=False)
        return
    print(f"sdshape: could not write {wanted} ({why}); the results are in {written}", file=sys.stderr)
