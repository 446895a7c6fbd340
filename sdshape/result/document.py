"""Results as a pytest-benchmark-shaped JSON document: serializing :class:`StageResult`, and nothing else.

``sdshape run --json`` and ``pytest bench/ --benchmark-json`` write the same
schema: ``machine_info`` (with the environment fingerprint), ``commit_info``,
``benchmarks`` (one per stage: ``stats`` with the raw rounds in ``data``, and
everything else in ``extra_info``), ``datetime``, ``version``. A stage that
failed is still a benchmark, with ``stats: null`` and its status and message.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from sdshape import __version__
from sdshape.core.vocabulary import PER_IMAGE_STAGES, STAGES
from sdshape.result.fingerprint import flat_fingerprint
from sdshape.result.model import StageResult
from sdshape.result.records import Residual
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


def finalize(results: list[StageResult]) -> None:
    """Shares of time and energy across the per-image stages of each run, and the pipeline's residual.

    Derived across a run's rows, so set here, once every stage of the run is measured.
    The residual is the pipeline's median minus the sum of the three stage
    medians: near zero means the per-stage numbers add up to a real image.
    """
    runs: dict[tuple, dict[str, StageResult]] = {}
    for result in results:
        runs.setdefault(result.id.run_key, {})[result.stage] = result
    for stages in runs.values():
        medians = {s: r.median for s, r in stages.items() if r.median is not None}
        energies = {s: r.energy.joules_per_call for s, r in stages.items()}
        complete = all(s in medians for s in PER_IMAGE_STAGES)
        time_total = sum(medians[s] for s in PER_IMAGE_STAGES) if complete else None
        energy_values = [energies.get(s) for s in PER_IMAGE_STAGES]
        energy_total = sum(energy_values) if all(v is not None for v in energy_values) else None  # type: ignore[misc]
        for stage, result in stages.items():
            per_image = stage in PER_IMAGE_STAGES
            result.timing.time_share = medians[stage] / time_total if time_total and per_image else None
            energy = energies.get(stage)
            result.energy.share = energy / energy_total if energy_total and per_image and energy else None
        if "pipeline" in medians and time_total:
            spreads = [stages[s].timing.iqr or 0.0 for s in (*PER_IMAGE_STAGES, "pipeline")]
            stages["pipeline"].timing.residual = residual_check(medians, spreads)


def finalize_entries(entries: list[dict[str, Any]]) -> None:
    """:func:`finalize` over benchmark items another tool wrote (pytest-benchmark): derived keys updated."""
    results = [StageResult.from_extra_info(e["extra_info"], e.get("stats")) for e in entries]
    finalize(results)
    for entry, result in zip(entries, results, strict=True):
        info = entry["extra_info"]
        info["time_share"], info["energy_share"] = result.timing.time_share, result.energy.share
        if result.timing.residual is not None:
            info["residual"] = result.timing.residual.to_json()


# Beyond the rounds' spread, a residual under this share of the pipeline is launch and hand-over time
# between stages (a conditioning tensor built, a latent handed on), not a contradiction.
RESIDUAL_FLOOR = 0.01


def residual_check(medians: dict[str, float], spreads: list[float]) -> Residual:
    """The pipeline against the sum of its stages, and whether the difference is inside their spread.

    The combined spread is the stages' and the pipeline's IQRs added in quadrature.
    A residual beyond it (and beyond 1% of the pipeline) is a warning, not a
    finding: the rounds were too few or too noisy for the shares to be trusted.
    """
    total = sum(medians[s] for s in PER_IMAGE_STAGES)
    pipeline = medians["pipeline"]
    residual = pipeline - total
    spread = math.sqrt(sum(value**2 for value in spreads))
    slower = [s for s in PER_IMAGE_STAGES if medians[s] > pipeline]
    return Residual(
        sum_of_stages_s=total,
        residual_s=residual,
        residual_share=residual / pipeline,
        combined_spread_s=spread,
        within_spread=abs(residual) <= spread + RESIDUAL_FLOOR * pipeline and not slower,
        stages_slower_than_pipeline=slower,
    )


def machine_info(environment: dict[str, Any]) -> dict[str, Any]:
    """pytest-benchmark's machine_info plus the sdshape environment fingerprint."""
    from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info

    info = pytest_benchmark_generate_machine_info()
    info.update(flat_fingerprint(environment))
    return info


def document(
    results: list[StageResult], environment: dict[str, Any], options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The results file: pytest-benchmark's schema plus sdshape's keys; ``options`` are the run's
    resolved options (``Plan.resolved_options``), saved beside the results as optimum-benchmark saves
    its config beside its report."""
    from pytest_benchmark import __version__ as pytest_benchmark_version
    from pytest_benchmark.utils import get_commit_info

    finalize(results)
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
