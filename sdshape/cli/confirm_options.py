"""The flags of confirmation runs (``compare --confirm``, ``history --confirm``) and of ``sdshape bisect``,
declared here so that the parser module gains one call per command."""

from __future__ import annotations

from typing import Any

from sdshape.config.common_flags import add_store_flag
from sdshape.core.bounds import FRACTION, SIGNIFICANCE, Bounds

CONFIRM_RUNS = Bounds(int, 1, 100, noun="runs")
CONFIRM_MINUTES = Bounds(float, 0, 24 * 60, above=True, unit="minutes")


def add_confirm_options(parser: Any, what: str) -> None:
    """``--confirm`` and its budget; ``what``: the verdicts it reruns for, in words."""
    parser.add_argument(
        "--confirm",
        action="store_true",
        help=f"rerun the job while {what}, with the command its rows recorded; each run is stored (needs --store)",
    )
    parser.add_argument(
        "--confirm-command",
        metavar="COMMAND",
        help='rerun this command instead of the recorded one, e.g. "sdshape run --shape tiny --device cpu" '
        "(implies --confirm)",
    )
    parser.add_argument(
        "--confirm-runs", type=CONFIRM_RUNS, default=5, help="at most this many confirmation runs (%(default)s)"
    )
    parser.add_argument(
        "--confirm-minutes", type=CONFIRM_MINUTES, help="start no run that would end past this many minutes"
    )
    parser.add_argument(
        "--confirm-dir", default="confirmations", help="where the confirmation runs' files go (%(default)s)"
    )


def add_bisect_parser(sub: Any) -> None:
    bisect = sub.add_parser(
        "bisect", help="the first release of a package where a job got slower: one environment per release (uv)"
    )
    bisect.add_argument("--package", required=True, help="the package to bisect, e.g. diffusers")
    bisect.add_argument("--good", required=True, help="a release where the job was fast")
    bisect.add_argument("--bad", required=True, help="a later release where it was slow")
    source = bisect.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="source", help="a result file, or a stored file (hash prefix): its command")
    source.add_argument(
        "--command", dest="job_command", help='the job, e.g. "sdshape run --shape tiny --device cpu --steps 2"'
    )
    add_store_flag(bisect, "where every run is stored", required=True)
    bisect.add_argument("--pre", action="store_true", help="include pre-releases between good and bad")
    bisect.add_argument("--out", default="bisect", help="folder for the environments, runs and report (%(default)s)")
    bisect.add_argument(
        "--threshold", type=FRACTION, default=0.05, help="smallest time change that makes a release bad (%(default)s)"
    )
    bisect.add_argument(
        "--alpha", type=SIGNIFICANCE, default=0.05, help="Mann-Whitney U's p must be below this (%(default)s)"
    )
    bisect.add_argument(
        "--confirm-runs", type=CONFIRM_RUNS, default=3, help="at most this many extra runs per release (%(default)s)"
    )
    bisect.add_argument("--confirm-minutes", type=CONFIRM_MINUTES, help="per release: start no run past this")
    bisect.add_argument(
        "--extra-index-url",
        action="append",
        default=[],
        help="a package index besides pip's (repeatable)",
    )
    bisect.add_argument(
        "--find-links",
        action="append",
        default=[],
        help="a folder of wheels besides pip's (repeatable)",
    )
    bisect.add_argument("--json", dest="json_path", help="also write the report as JSON here")
