"""``compare --confirm`` and ``history --confirm``: the confirmation loop (``sdshape.regression.confirm``)
wired to the recorded command (``sdshape.cli.recorded``), the rerun process (``sdshape.fleet.rerun``) and
the store.

compare reruns the NEW side's command here and pools each confirmation's raw rounds with NEW's, so it
must run where NEW was measured: a confirmation whose environment fingerprint differs from NEW's
(another torch, driver, GPU) stops the loop with one line. history reruns the command of each timeline
whose last step waits for runs after it, rereads the store, and judges again.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sdshape.core.errors import UsageError
from sdshape.result.io import ResultFile


def wanted(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "confirm", False) or getattr(args, "confirm_command", None))


def given_command(text: str) -> list[str]:
    """``--confirm-command``'s text as a run's argument list (``sdshape`` in front is optional)."""
    from sdshape.cli.recorded import recorded_command

    try:
        words = shlex.split(text)
    except ValueError as error:
        raise UsageError(f"--confirm-command {text!r}: {error}") from None
    if words[:1] == ["sdshape"]:
        words = words[1:]
    if words[:1] != ["run"]:
        raise UsageError(f"--confirm-command {text!r}: must be an `sdshape run ...` command")
    return recorded_command(words)


def recorded_in(result: ResultFile, label: str) -> list[str]:
    """The command a file's rows recorded; a file without one is a one-line error."""
    for row in result.rows.values():
        if row.conditions.command:
            return list(row.conditions.command)
    raise UsageError(
        f"{label} ({result.path}) records no command (written before sdshape recorded it, or by pytest bench/); "
        "give --confirm-command"
    )


def _budget(args: argparse.Namespace) -> Any:
    from sdshape.regression.confirm import Budget

    return Budget(args.confirm_runs, args.confirm_minutes)


def _say(line: str) -> None:
    print(f"sdshape: {line}", file=sys.stderr, flush=True)


def _require_store(args: argparse.Namespace, command: str) -> str:
    if args.store is None:
        raise UsageError(f"{command} --confirm: give --store too (each confirmation run is stored like any run)")
    return args.store


def _versions_differ(reference: dict[str, Any], run: dict[str, Any]) -> str:
    from sdshape.result.fingerprint import fingerprint_diff

    differ = [d for d in fingerprint_diff(reference, run) if d["field"] != "power_limit_w"]
    return ", ".join(f"{d['field']} {d['base']} -> {d['new']}" for d in differ)


def confirm_compare(args: argparse.Namespace, new: ResultFile, judge: Callable[[ResultFile], list[Any]]) -> ResultFile:
    """NEW with the confirmation runs' rounds pooled in, once no verdict is undecided or the budget is spent."""
    from sdshape.fleet.rerun import run_recorded
    from sdshape.regression.confirm import confirm, pooled

    store = _require_store(args, "compare")
    command = given_command(args.confirm_command) if args.confirm_command else recorded_in(new, "NEW")

    def open_ids(runs: list[ResultFile]) -> list[str]:
        verdicts = judge(pooled(new, runs))
        return [_id_text(v.id) for v in verdicts if v.verdict == "undecided" and v.metrics["time"].base_rounds]

    def rerun(index: int) -> ResultFile:
        result = run_recorded(command, Path(args.confirm_dir), store)
        differ = _versions_differ(new.machine_info, result.machine_info)
        if differ:
            raise UsageError(
                f"compare --confirm: the confirmation ran in another environment than NEW ({differ}); "
                f"run it where NEW was measured (the run is kept: {result.path})"
            )
        _say(f"confirmation run {index}: {result.path}")
        return result

    outcome = confirm(open_ids, rerun, _budget(args), say=_say)
    _say(_ending(outcome))
    return pooled(new, outcome.runs)


def confirm_history(args: argparse.Namespace, judge: Callable[[list[Any]], list[Any]]) -> list[Any]:
    """The timelines once no step waits for more runs, or the budget is spent (``judge``: the timelines of
    the store's observations, reread after each confirmation run)."""
    from sdshape.fleet.rerun import run_recorded
    from sdshape.regression.confirm import confirm
    from sdshape.regression.points import stored_observations
    from sdshape.store.db import open_store

    store = _require_store(args, "history")

    def collect() -> list[Any]:
        return judge(stored_observations(open_store(store or None, create=False), []))

    given = given_command(args.confirm_command) if args.confirm_command else None
    state: dict[str, Any] = {"timelines": collect(), "commands": {}, "counts": {}, "stuck": set()}

    def open_timelines(runs: list[Any]) -> list[str]:
        if runs:
            state["timelines"] = collect()
        waiting = [t for t in state["timelines"] if waits_for_runs(t) and t.id not in state["stuck"]]
        for timeline in waiting:
            before = state["counts"].get(timeline.id)
            if before is not None and len(timeline.points) <= before:  # the rerun did not land on it
                _say(f"{timeline.name}: the confirmation runs do not land on this timeline (another machine?)")
                state["stuck"].add(timeline.id)
        waiting = [t for t in waiting if t.id not in state["stuck"]]
        state["counts"] = {t.id: len(t.points) for t in waiting}
        state["commands"] = {}
        for timeline in waiting:
            command = given or _timeline_command(timeline, store)
            state["commands"].setdefault(shlex.join(command), command)
        return [t.name for t in waiting]

    def rerun(index: int) -> list[ResultFile]:
        done = [run_recorded(command, Path(args.confirm_dir), store) for command in state["commands"].values()]
        _say(f"confirmation run {index}: " + ", ".join(str(r.path) for r in done))
        return done

    outcome = confirm(open_timelines, rerun, _budget(args), say=_say)
    _say(_ending(outcome))
    return state["timelines"]


def waits_for_runs(timeline: Any) -> bool:
    """A step judged suspicious because too few runs follow it: more runs settle it."""
    from sdshape.regression.history import MIN_RUNS_AFTER

    return any(
        step.verdict == "suspicious" and len(timeline.points) - step.after - 1 < MIN_RUNS_AFTER
        for step in timeline.steps
    )


def _timeline_command(timeline: Any, store: str) -> list[str]:
    """The command recorded by the rows of the timeline's newest run (a stored file, by its path)."""
    from sdshape.store.db import open_store
    from sdshape.store.read import find_file, result_files

    engine = open_store(store or None, create=False)
    newest = str(timeline.points[-1].path)
    try:
        found = find_file(engine, newest)
    except UsageError:  # one path ingested several times (a --json file rewritten): the newest of them
        same = [f for f in result_files(engine, skipped=[]) if str(f.path) == newest]
        if not same:
            raise
        found = same[-1]
    return recorded_in(found, timeline.name)


def _id_text(identity: dict[str, Any]) -> str:
    return "/".join(str(identity.get(name)) for name in ("stage", "shape", "backend", "precision"))


def _ending(outcome: Any) -> str:
    runs = f"{len(outcome.runs)} confirmation run(s) in {outcome.seconds:.0f} s"
    if outcome.settled:
        return f"{runs}: settled"
    return f"{runs}: {outcome.stopped}; still open: {', '.join(outcome.still_open)}"
