"""``sdshape matrix MATRIX.toml``: every job of the matrix as its own ``sdshape run``, one GPU each, on Ray."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from sdshape.core.errors import UsageError


def cmd_matrix(args: argparse.Namespace, console: Console) -> int:
    from sdshape.fleet.jobs import load_matrix
    from sdshape.result.output import folder_target

    jobs = load_matrix(args.matrix)  # the whole matrix, by sdshape run's rules: nothing of Ray before it passes
    if args.declare_gpus is not None and (args.ray or args.declare_gpus < 1):
        raise UsageError("--declare-gpus N (N >= 1) is for a local Ray cluster only, not with --ray")
    out = folder_target(args.out, "--out")
    from sdshape.fleet.runner import check_reachable, ray_module, run_matrix

    ray_module()  # Ray missing is one line, before anything starts
    check_reachable(args.ray)  # a cluster that does not answer too
    out.mkdir(parents=True, exist_ok=True)
    engine = None
    if args.store is not None:
        from sdshape.store.db import open_store

        engine = open_store(args.store or None)
    failed: list[str] = []

    def done(job: Any, path: Path, document: dict[str, Any]) -> None:
        rows = document.get("benchmarks", [])
        bad = [b["extra_info"]["stage"] for b in rows if b["extra_info"].get("status") != "ok"]
        info = document.get("job", {})
        where = f"{info.get('host', '?')} GPU {info.get('gpu_uuid') or info.get('ray_gpu_id')}"
        note = ""
        if engine is not None:
            from sdshape.store.ingest import add_file

            note = f"; store: {add_file(engine, path).note}"
        throttled = f" [red]throttled: {'; '.join(info['throttled'])}[/red]" if info.get("throttled") else ""
        status = f"[red]{len(bad)} stage(s) failed[/red]" if bad else "ok"
        console.print(
            f"job {job.index + 1}/{len(jobs)} {escape(job.name)} on {where}: {status}{throttled}{escape(note)}"
        )
        if bad:
            failed.append(job.name)

    console.print(f"{len(jobs)} jobs from {args.matrix}; results in {out}", highlight=False)
    run_matrix(jobs, out, args.ray, args.declare_gpus, done)
    console.print(f"{len(jobs) - len(failed)} of {len(jobs)} jobs complete", highlight=False)
    return 1 if failed else 0
