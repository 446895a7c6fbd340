"""The ``sdshape`` argument parser: every subcommand's flags, and nothing that runs them.

``run``'s flags come from :mod:`sdshape.config.options` (shared with ``pytest
bench/``), plus the flags the backends declare; those load the backend classes,
so they are added only when the command is ``run`` or ``shapes``, and the
reading commands start without torch.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from sdshape import __version__
from sdshape.cli.confirm_options import add_bisect_parser, add_confirm_options
from sdshape.config import limits
from sdshape.config.common_flags import add_catalog_flag, add_json_flag, add_store_flag
from sdshape.config.declaring import FIT, INSPECT
from sdshape.config.options import add_options
from sdshape.core.bounds import FRACTION, SIGNIFICANCE, Bounds
from sdshape.core.errors import UsageError
from sdshape.regression.compare import Floors
from sdshape.regression.history import RUN_TO_RUN, STEP_FLOOR


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # a number's bounds refuse it as "argument --steps: must be at least 1, got 0"
        message = re.sub(r"^argument (\S+): must be ", r"\1 must be ", message)
        raise UsageError(f"{self.prog}: {message}")

    def add_argument(self, *args: Any, **kwargs: Any) -> Any:
        """A bounded number's help says its range (so ``--help`` and the command reference do)."""
        bounds = kwargs.get("type")
        if isinstance(bounds, Bounds) and kwargs.get("help"):
            kwargs["help"] += f"; {bounds.noun + ' ' if bounds.noun else ''}{bounds.describe()}".replace("%", "%%")
        return super().add_argument(*args, **kwargs)


def add_timeline_flags(parser: Parser) -> None:
    """The flags that choose and judge timelines, shared by ``history`` and ``publish`` (same verdicts)."""
    parser.add_argument("--gpu", help="only this GPU (a substring of its name)")
    parser.add_argument(
        "--threshold", type=FRACTION, default=STEP_FLOOR, help="smallest level shift that is a step (%(default)s)"
    )
    parser.add_argument(
        "--run-to-run",
        type=FRACTION,
        default=RUN_TO_RUN,
        help="least run-to-run variation allowed for, a fraction (%(default)s)",
    )
    parser.add_argument("--series-by", help="comma list: only these fields make the series key")
    parser.add_argument("--ignore", help="comma list: leave these fields out of the series key")


def build_parser(backend_flags: bool = False) -> Parser:
    parser = Parser(prog="sdshape", description="Where a diffusion model's parameters, time, memory and energy go.")
    parser.add_argument("--version", action="version", version=f"sdshape {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    backends = sub.add_parser("backends", help="list backends: available here or not, their options and variants")
    add_json_flag(backends)
    zoo = sub.add_parser("zoo", help="list components and shapes with parameter counts")
    add_json_flag(zoo)
    inspect = sub.add_parser("inspect", help="static cost of a shape: params, weight bytes, FLOPs (meta device)")
    inspect.add_argument("shape", nargs="?", help="a zoo shape (see `sdshape zoo`); or --all")
    inspect.add_argument(
        "--all", action="store_true", help="every published system at its native settings: shares by component"
    )
    inspect.add_argument("--chart", help="with --all: draw the field chart to this PNG")
    add_options(inspect.add_argument, INSPECT)  # --precision, --resolution, --steps: run's, with inspect's defaults
    add_json_flag(inspect)
    inspect.add_argument(
        "--quality",
        action="store_true",
        help="with --all: published quality figures beside bytes, peak VRAM and seconds on a card (static model)",
    )
    inspect.add_argument("--gpu", help='with --all --quality: the catalog card to price on (default "RTX 4090")')
    add_catalog_flag(inspect)
    inspect.add_argument("--out", help="with --all --quality: folder for quality.json, quality.md and quality.png")
    fit = sub.add_parser("fit", help="which cards a shape fits, under which policy, how fast (model, no GPU)")
    fit.add_argument("shape", help="a zoo shape (see `sdshape zoo`)")
    fit.add_argument("--gpu", action="append", help="a catalog card (repeat for several; default: the whole catalog)")
    add_catalog_flag(fit)
    add_options(fit.add_argument, FIT)  # run's options, with fit's own defaults where a model differs
    fit.add_argument(
        "--host", default="desktop", help="the host CPU's class for eager launch costs: desktop or server (desktop)"
    )
    add_json_flag(fit)
    run = sub.add_parser("run", help="measure each stage of a shape (the main job)")
    if backend_flags:
        from sdshape.config.declaring import RUN

        add_options(run.add_argument, RUN)
    compare = sub.add_parser("compare", help="verdicts between two result files: regressions, improvements, noise")
    compare.add_argument("base")
    compare.add_argument("new")
    floors = Floors()
    compare.add_argument(
        "--threshold", type=FRACTION, default=floors.time, help="minimum time change that counts (%(default)s)"
    )
    compare.add_argument(
        "--memory-threshold", type=FRACTION, default=floors.memory, help="minimum memory change (%(default)s)"
    )
    compare.add_argument(
        "--energy-threshold", type=FRACTION, default=floors.energy, help="minimum energy change (%(default)s)"
    )
    compare.add_argument(
        "--alpha",
        type=SIGNIFICANCE,
        default=floors.alpha,
        help="time: Mann-Whitney U's p must be below this (%(default)s)",
    )
    compare.add_argument("--thresholds", help="TOML file of per-id overrides ([[override]] tables)")
    add_store_flag(compare, "BASE and NEW may be stored files (a hash prefix or the ingested path)")
    compare.add_argument(
        "--run-to-run",
        type=FRACTION,
        help="time: the run-to-run sigma a change must stand 5 sigmas clear of (with --store: read per series "
        "from the store's history, when it holds 5 or more runs)",
    )
    add_json_flag(compare)
    add_confirm_options(compare, "a verdict is undecided")
    report = sub.add_parser("report", help="Markdown + HTML report: shares per stage, GPU feasibility matrix")
    report.add_argument(
        "results", nargs="*", help="result files (run --json/--save, pytest --benchmark-json) and shapes.json files"
    )
    add_store_flag(report, "also every file in the results store")
    report.add_argument("--gpus", help="comma list of catalog GPUs (default: the whole catalog)")
    add_catalog_flag(report)
    report.add_argument("--out", default="report", help="output folder (default report/)")
    shapes = sub.add_parser("shapes", help="compositions within a parameter budget; --measure for their costs")
    shapes.add_argument("--budget", type=limits.BUDGET, help="parameter budget, e.g. 1.07e9 (or --budget-bytes)")
    shapes.add_argument(
        "--budget-bytes", help="budget in bytes of weights stored in --precision, e.g. 4GB (with --gpu)"
    )
    shapes.add_argument(
        "--gpu", action="append", help="price every composition on this catalog card (static model; repeatable)"
    )
    add_catalog_flag(shapes)
    shapes.add_argument("--family", default="zoo", help="zoo (real architectures) or tiny (test-sized)")
    shapes.add_argument(
        "--measure",
        action="store_true",
        help="measure each distinct component once and compose (with --gpu: the priced table's first --top N)",
    )
    shapes.add_argument(
        "--top",
        type=limits.TOP,
        help="with --gpu and --measure: measure the first N compositions of the priced table that fit the card "
        "(default 5), beside the model's figures",
    )
    if backend_flags:  # the run options that apply to --measure, declared once in sdshape.config.options
        from sdshape.config.declaring import SHAPES

        add_options(shapes.add_argument, SHAPES)
    shapes.add_argument(
        "--out", help="folder for shapes.json; with --gpu shapes.md and priced.png; with --measure pareto.png"
    )
    add_json_flag(shapes)
    history = sub.add_parser(
        "history", help="timelines over time: steps, the events that caused them; exit 1 on a regression"
    )
    history.add_argument("dir", nargs="?", help="a folder of result files (or --store)")
    add_store_flag(history, "read the results store")
    history.add_argument("--out", default="history-report", help="where the Markdown and charts go")
    add_timeline_flags(history)
    add_confirm_options(history, "the last step is suspicious (too few runs after it)")
    add_bisect_parser(sub)
    publish = sub.add_parser(
        "publish", help="the store's history as a static HTML site: an index and a page per timeline"
    )
    add_store_flag(publish, "read the results store")
    publish.add_argument("--out", default="site", help="the site's folder, replaced whole (default site/)")
    add_timeline_flags(publish)
    matrix = sub.add_parser("matrix", help="shapes x backends x precisions x settings as jobs, one GPU each, on Ray")
    matrix.add_argument("matrix", help="a TOML file: shapes, backends, precisions lists and [[settings]] tables")
    matrix.add_argument("--ray", help="a Ray cluster's address, or auto (default: a local cluster)")
    matrix.add_argument(
        "--declare-gpus", type=limits.DECLARED_GPUS, help="a local cluster with this many GPUs declared (CPU tests)"
    )
    matrix.add_argument("--out", default="matrix-results", help="folder for the jobs' result files (%(default)s)")
    add_store_flag(matrix, "ingest each job's results as it finishes")
    store = sub.add_parser("store", help="the results store: add result files, list them, remove one")
    actions = store.add_subparsers(dest="store_command", metavar="{add,list,remove}")
    actions.required = True
    add = actions.add_parser("add", help="ingest result files (the same file twice adds nothing)")
    add.add_argument("files", nargs="+")
    add_store_flag(add, "the store to add to")
    listing = actions.add_parser("list", help="the stored files")
    add_store_flag(listing, "the store to list")
    add_json_flag(listing)
    remove = actions.add_parser("remove", help="take one stored file out, with its rows and rounds")
    remove.add_argument("hash", help="6 or more hex digits of its content hash (see store list), or its ingested path")
    add_store_flag(remove, "the store to remove from")
    return parser
