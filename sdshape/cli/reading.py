"""``sdshape compare``, ``history``, ``report`` and ``store``: they read result files or the store, never torch."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from sdshape.core.errors import UsageError


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from sdshape.cli import confirming
    from sdshape.present.compare_table import print_verdicts
    from sdshape.regression import compare

    if confirming.wanted(args) and args.store is not None:  # --confirm stores its runs: a writer, which may
        from sdshape.store.db import open_store  # make the store, checked before any file is read or run

        open_store(args.store or None, create=True)
    floors = compare.Floors(args.threshold, args.memory_threshold, args.energy_threshold, args.alpha)
    thresholds = compare.load_thresholds(args.thresholds, floors) if args.thresholds else compare.Thresholds(floors)
    base, new = _load_either(args.base, args.store), _load_either(args.new, args.store)
    noise = None
    if args.run_to_run is not None:
        noise = lambda row, machine: args.run_to_run  # noqa: E731  (one figure for every row)
    elif args.store is not None:  # each row's series history in the store tells its run-to-run noise
        from sdshape.regression.history import collect, run_to_run_lookup
        from sdshape.regression.points import stored_observations
        from sdshape.store.db import open_store

        skipped: list[str] = []
        noise = run_to_run_lookup(collect(stored_observations(open_store(args.store or None, False), skipped)))
        _say_skipped(skipped, "left out of the run-to-run noise")
    if confirming.wanted(args):  # rerun while a verdict is undecided; NEW's rounds pooled with the reruns'
        judge = lambda pooled: compare.compare_files(base, pooled, thresholds, noise)  # noqa: E731
        new = confirming.confirm_compare(args, new, judge)
    results = compare.compare_files(base, new, thresholds, noise)
    environment = compare.environment_diff(base, new)
    if args.json:
        from sdshape.result.output import standard_json

        print(standard_json([result.to_json() for result in results]))  # an infinite change is null
    else:
        print_verdicts(results, environment, base, new, console)
    failing = [result for result in results if result.failing]
    if failing:  # exit 1 says so on stderr too, so that a --json reader or a CI log is never left guessing
        print(f"sdshape: {len(failing)} of {len(results)} ids regressed or got a worse status", file=sys.stderr)
    return 1 if failing else 0


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from sdshape.present.report import write
    from sdshape.result.output import folder_target

    folder_target(args.out, "--out")  # before the store is read
    gpus = [name.strip() for name in args.gpus.split(",") if name.strip()] if args.gpus else None
    sources: list[Any] = list(args.results)
    if args.store is not None:
        from sdshape.store.db import open_store
        from sdshape.store.read import result_files

        skipped: list[str] = []
        sources += result_files(open_store(args.store or None, create=False), skipped=skipped)
        _say_skipped(skipped, "left out of the report")
    if not sources:
        raise UsageError("report: give result files, or --store")
    from sdshape.present.report.progress import LateProgress
    from sdshape.run.progress import make_progress

    with LateProgress(lambda: make_progress(Console(stderr=True))) as progress:  # shown once it runs long
        markdown_path, html_path = write(sources, Path(args.out), gpus, args.gpu_catalog, progress)
    console.print(f"report written: {markdown_path} and {html_path}", highlight=False)
    return 0


def cmd_history(args: argparse.Namespace, console: Console) -> int:
    from sdshape.present.history_report import print_history, write_report
    from sdshape.regression.history import collect, files_under, regressions, throttled_note
    from sdshape.result.output import folder_target
    from sdshape.store.series import SeriesKey

    folder_target(args.out, "--out")  # before any file is read (the thresholds are checked by the parser)
    key = SeriesKey.chosen(_names(args.series_by), _names(args.ignore) or ())
    if (args.dir is None) == (args.store is None):
        raise UsageError("history: give a folder of result files or --store (one of them)")
    skipped: list[str] = []
    if args.store is not None:
        from sdshape.regression.points import stored_observations
        from sdshape.store.db import open_store

        files = stored_observations(open_store(args.store or None, create=False), skipped)
        if not files:
            raise UsageError("history: the store holds no completed rows (sdshape store add FILES...)")
    else:
        files, skipped = files_under(Path(args.dir))
    _say_skipped(skipped, "skipped")
    timelines = collect(files, key, args.threshold, args.run_to_run, args.gpu)
    from sdshape.cli import confirming

    if confirming.wanted(args):  # rerun while the last step waits for runs after it; the store reread each time
        again = lambda observed: collect(observed, key, args.threshold, args.run_to_run, args.gpu)  # noqa: E731
        timelines = confirming.confirm_history(args, again)
    report = write_report(timelines, key, Path(args.out), skipped, args.threshold)
    print_history(timelines, key, console)
    found = regressions(timelines)
    throttled = throttled_note(timelines)
    if throttled:
        console.print(throttled, highlight=False)
    console.print(f"{len(found)} regression(s); report: {report}", highlight=False)
    return 1 if found else 0


def _say_skipped(notes: list[str], what: str) -> None:
    """Each file a reading command leaves out, and why, one line each on stderr."""
    for note in notes:
        print(f"sdshape: {what}: {note}", file=sys.stderr)


def _names(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def _load_either(reference: str, store: str | None) -> Any:
    """A result file by path, or (with --store) a stored file by hash prefix or ingested path."""
    from sdshape.result import io

    if store is None or Path(reference).is_file():
        return io.load(reference)
    from sdshape.store.db import open_store
    from sdshape.store.read import find_file

    return find_file(open_store(store or None, create=False), reference)


def cmd_store(args: argparse.Namespace, console: Console) -> int:
    from sdshape.store.db import open_store
    from sdshape.store.location import display

    engine = open_store(args.store, create=args.store_command in ("add", "remove"))  # list never makes one
    if args.store_command == "add":
        from sdshape.store.ingest import add_file

        for path in args.files:
            done = add_file(engine, path)
            console.print(f"{display(path)}: {done.note}", highlight=False)
        return 0
    if args.store_command == "remove":
        from sdshape.store.ingest import remove_file

        console.print(remove_file(engine, args.hash).note, highlight=False)
        return 0
    from sdshape.store.read import stored_files

    listed = stored_files(engine)
    if args.json:
        print(json.dumps(listed, indent=2))
        return 0
    from sdshape.present.store_table import print_stored

    print_stored(listed, console)
    return 0
