"""Results as a pytest-benchmark-shaped JSON document: serializing :class:`StageResult`, and nothing else.

``sdshape run --json`` and ``pytest bench/ --benchmark-json`` write the same
schema: ``machine_info`` (with the environment fingerprint), ``commit_info``,
``benchmarks`` (one per stage: ``stats`` with the raw rounds in ``data``, and
everything else in ``extra_info``), ``datetime``, ``version``. A stage that
failed is still a benchmark, with ``stats: null`` and its status and message.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sdshape import __version__
from sdshape.core.vocabulary import STAGES
from sdshape.result.fingerprint import flat_fingerprint
from sdshape.result.model import StageResult
from sdshape.result.schema import SCHEMA_VERSION


def stats_dict(rounds_s: list[float]) -> dict[str, Any] | None:
    """pytest-benchmark's own statistics over the timed rounds (seconds), raw rounds in ``data``."""
    if not rounds_s:
        return None
    from pytest_benchmark.stats import Stats

    stats = Stats()
    for value in rounds_s:
        stats.update(value)
    result = stats.as_dict()
    result["data"] = list(rounds_s)
    result["iterations"] = 1
    return result


def entry_name(result: StageResult) -> str:
    i = result.id
    label = "-".join((i.shape, i.backend, i.precision, f"b{i.batch}", f"{i.resolution}px", f"{i.steps}steps"))
    return f"{i.stage}[{label}]"


def to_benchmark(result: StageResult) -> dict[str, Any]:
    """One stage as a pytest-benchmark ``benchmarks`` item."""
    info = result.to_extra_info()
    name = entry_name(result)
    return {
        "group": result.id.shape,
        "name": name,
        "fullname": f"sdshape::{name}",
        "params": None,
        "param": None,
        "extra_info": info,
        "options": {"timer": info["timer"], "warmup": info["warmup_rounds"], "rounds": info["rounds"]},
        "stats": result.timing.stats,
    }


def machine_info(environment: dict[str, Any]) -> dict[str, Any]:
    """pytest-benchmark's machine_info plus the sdshape environment fingerprint."""
    from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info

    info = pytest_benchmark_generate_machine_info()
    info.update(flat_fingerprint(environment))
    return info


def document(
    results: list[StageResult], environment: dict[str, Any], options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The results file: pytest-benchmark's schema plus sdshape's keys (the rows as they are: their shares and
    residual were assembled by the campaign, ``sdshape.result.shares``); ``options`` are the run's
    resolved options (``Plan.resolved_options``), saved beside the results as optimum-benchmark saves
    its config beside its report."""
    from pytest_benchmark import __version__ as pytest_benchmark_version
    from pytest_benchmark.utils import get_commit_info

    return {
        "machine_info": machine_info(environment),
        "commit_info": get_commit_info(),
        "benchmarks": [to_benchmark(result) for result in results],
        "datetime": dt.datetime.now(dt.UTC).isoformat(),
        "schema_version": SCHEMA_VERSION,  # also in every row, which pytest bench/'s files carry too
        "version": pytest_benchmark_version,
        "sdshape_version": __version__,
        "stages": list(STAGES),
        **({"options": options} if options is not None else {}),
    }
