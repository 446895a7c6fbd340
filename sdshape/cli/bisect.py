"""``sdshape bisect --package P --good G --bad B``: the first release of P between G and B where a job
got slower.

The job is a recorded ``sdshape run`` command (``--from`` a result file or stored file, or
``--command``). Each tested release gets its own environment (``sdshape.fleet.environments``: this one
frozen, P swapped), runs the job there, and is judged against the good release's run with compare's
time test (Mann-Whitney U on the raw rounds, ``--threshold`` effect floor, ``--alpha``): any id that
regressed makes the release bad; an undecided id gets confirmation runs, pooled, until it is settled
or the budget is spent. Every run is stored. The search itself is ``sdshape.regression.bisect``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from sdshape.core.errors import UsageError
from sdshape.present.bisect_table import print_bisect
from sdshape.result.io import ResultFile


def _say(line: str) -> None:
    print(f"sdshape: bisect: {line}", file=sys.stderr, flush=True)


def _command(args: argparse.Namespace) -> list[str]:
    from sdshape.cli.confirming import given_command, recorded_in

    if args.job_command is not None:
        try:
            return given_command(args.job_command)
        except UsageError as error:
            raise UsageError(str(error).replace("--confirm-command", "--command")) from None
    if Path(args.source).is_file():
        from sdshape.result.io import load

        return recorded_in(load(args.source), "--from")
    from sdshape.store.db import open_store
    from sdshape.store.read import find_file

    return recorded_in(find_file(open_store(args.store or None, create=False), args.source), "--from")


def time_verdicts(good: ResultFile, candidate: ResultFile, threshold: float, alpha: float) -> list[tuple[dict, Any]]:
    """Each id, and its time verdict: the candidate against the good release (compare's test)."""
    from sdshape.regression.compare import Floors, Thresholds, compare_files

    verdicts = compare_files(good, candidate, Thresholds(Floors(time=threshold, alpha=alpha)))
    return [(v.id, v.metrics["time"]) for v in verdicts if "time" in v.metrics]


def classify(verdicts: list[tuple[dict, Any]]) -> str:
    """bad when any id's time regressed; undecided when none did and one is undecided; good otherwise."""
    if any(v.verdict == "regression" for _, v in verdicts):
        return "bad"
    return "undecided" if any(v.verdict == "undecided" for _, v in verdicts) else "good"


def cmd_bisect(args: argparse.Namespace, console: Console) -> int:
    from sdshape.fleet import environments, releases
    from sdshape.fleet.rerun import run_recorded
    from sdshape.regression.bisect import UNBUILDABLE, search
    from sdshape.regression.confirm import Budget, confirm, pooled
    from sdshape.result.output import folder_target, make_folder, standard_json, write_output

    started = time.monotonic()
    out = folder_target(args.out, "--out")
    command = _command(args)
    listed = releases.published(releases.index_document(args.package), args.pre)
    candidates = releases.between(args.package, args.good, args.bad, listed, args.pre)
    sources = environments.pip_sources(args.extra_index_url, args.find_links)
    make_folder(out)
    _say(f"{len(candidates)} releases of {args.package}: {', '.join(candidates)}; job: sdshape {' '.join(command)}")
    details: dict[str, dict[str, Any]] = {}
    baseline: list[ResultFile] = []

    def runs_of(version: str) -> tuple[list[ResultFile], str]:
        """The release's runs (the first and its confirmations) and its verdict against the good runs."""
        log = out / "logs" / f"{args.package}-{version}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        _say(f"{version}: building its environment")
        begun = time.monotonic()
        try:
            python = environments.build(out / "envs" / f"{args.package}-{version}", args.package, version, sources, log)
        except UsageError as error:
            _say(str(error))
            details[version] = {"verdict": UNBUILDABLE, "note": str(error), "runs": []}
            return [], UNBUILDABLE
        built = time.monotonic() - begun
        state: dict[str, Any] = {"verdict": "undecided", "verdicts": []}

        def open_ids(runs: list[ResultFile]) -> list[str]:
            if not runs:
                return [f"{version}: no run yet"]
            if not baseline:  # the good release itself: one run is its baseline
                state["verdict"] = "good"
                return []
            verdicts = time_verdicts(
                pooled(baseline[0], baseline[1:]), pooled(runs[0], runs[1:]), args.threshold, args.alpha
            )
            state["verdict"], state["verdicts"] = classify(verdicts), verdicts
            return [f"{version}: undecided"] if state["verdict"] == "undecided" else []

        def rerun(index: int) -> ResultFile:
            _say(f"{version}: run {index}")
            return run_recorded(command, out / "runs", args.store, f"{args.package}-{version}", str(python))

        try:
            outcome = confirm(open_ids, rerun, Budget(1 + args.confirm_runs, args.confirm_minutes), say=_say)
        except UsageError as error:  # the job failed in this release's environment: stepped around, as unbuilt
            _say(str(error))
            details[version] = {"verdict": "failed", "note": str(error), "runs": []}
            return [], "failed"
        changes = [v.change for _, v in state["verdicts"] if v.change is not None]
        details[version] = {
            "verdict": state["verdict"], "runs": [str(r.path) for r in outcome.runs],
            "environment_s": round(built, 1), "runs_s": round(outcome.seconds, 1),
            "largest_time_change": max(changes, key=abs) if changes else None,
            "ids": [{"stage": ident.get("stage"), "verdict": v.verdict, "change": v.change, "p_value": v.p_value}
                    for ident, v in state["verdicts"]],
        }  # fmt: skip
        _say(f"{version}: {state['verdict']} ({len(outcome.runs)} run(s))")
        return outcome.runs, state["verdict"]

    good_runs, verdict = runs_of(candidates[0])
    if verdict != "good":
        raise UsageError(f"--good {args.good}: no run completed in its environment (see {out / 'logs'})")
    baseline.extend(good_runs)
    found = search(candidates, lambda version: runs_of(version)[1])
    report = {
        "package": args.package, "good": args.good, "bad": args.bad, "releases": candidates,
        "first_bad": found.first_bad, "range": found.range, "note": found.note, "command": command,
        "threshold": args.threshold, "alpha": args.alpha, "tested": details,
        "wall_s": round(time.monotonic() - started, 1),
    }  # fmt: skip
    text = standard_json(report)
    paths = [write_output(out / "bisect.json", text)]
    if args.json_path:
        paths.append(write_output(Path(args.json_path), text))
    print_bisect(report, console)
    console.print(f"report: {', '.join(str(p) for p in paths)}", highlight=False)
    return 0 if found.first_bad else 1
