"""What is derived across a run's rows, once all are measured: each per-image stage's share of time and
energy, and the pipeline's residual against the sum of its stages.

A row alone cannot know its share; the campaign (``sdshape.run.campaign``) assembles them when the run
ends, and ``pytest bench/``'s JSON hook does the same over the entries pytest-benchmark wrote. The
document writer (``sdshape.result.document``) only serializes.
"""

from __future__ import annotations

import math
from typing import Any

from sdshape.core.vocabulary import PER_IMAGE_STAGES
from sdshape.result.model import StageResult
from sdshape.result.records import Residual


def assemble(results: list[StageResult]) -> None:
    """Shares of time and energy across the per-image stages of each run, and the pipeline's residual.

    Derived across a run's rows, so set by whoever holds them all once every stage of the run is measured:
    the campaign (``sdshape run``), or the pytest-benchmark hook that writes ``pytest bench/``'s file.
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


def assemble_entries(entries: list[dict[str, Any]]) -> None:
    """:func:`assemble` over benchmark items another tool wrote (pytest-benchmark): derived keys updated."""
    results = [StageResult.from_extra_info(e["extra_info"], e.get("stats")) for e in entries]
    assemble(results)
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
