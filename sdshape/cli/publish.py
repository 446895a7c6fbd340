"""``sdshape publish``: the store's history as a static site (like ``asv publish``), with the verdicts
``sdshape history --store`` gives for the same store and flags."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from rich.console import Console

from sdshape.core.errors import UsageError


def cmd_publish(args: argparse.Namespace, console: Console) -> int:
    from sdshape.present.dashboard.site import check_replaceable, write_site
    from sdshape.present.dashboard.timeline_data import timeline_document
    from sdshape.regression.history import MIN_RUNS_AFTER, Z_MIN, collect
    from sdshape.regression.points import stored_observations
    from sdshape.result.output import folder_target
    from sdshape.store.db import open_store
    from sdshape.store.location import locate
    from sdshape.store.series import SeriesKey

    out = folder_target(args.out, "--out")  # before the store is read
    check_replaceable(out)
    key = SeriesKey.chosen(_names(args.series_by), _names(args.ignore) or ())
    skipped: list[str] = []
    observations = stored_observations(open_store(args.store or None, create=False), skipped)
    for note in skipped:
        print(f"sdshape: left out of the site: {note}", file=sys.stderr)
    if not observations:
        raise UsageError("publish: the store holds no completed rows (sdshape store add FILES...)")
    timelines = collect(observations, key, args.threshold, args.run_to_run, args.gpu)
    about = {
        "store": locate(args.store or None).shown,
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "runs": len({observation.point.path for observation in observations}),
        "rows": len(observations),
        "key": key.describe(),
        "rule": f"A step needs z >= {Z_MIN:g}, a level shift of at least {args.threshold:.0%} and "
        f"{MIN_RUNS_AFTER} runs after it to be a regression; run-to-run σ is at least {args.run_to_run:.0%}.",
    }
    documents = [timeline_document(timeline) for timeline in timelines]
    site = write_site(documents, about, Path(out))
    regressions = sum(1 for d in documents for s in d["steps"] if s["verdict"] == "regression")
    console.print(
        f"site written: {site / 'index.html'} ({len(documents)} timelines, {about['runs']} runs, "
        f"{regressions} regression(s))",
        highlight=False,
    )
    return 0


def _names(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None
