"""Each measured run's section of the report: its shares of parameters, time, memory and energy (a chart for
the first :data:`MAX_SHARE_CHARTS` runs, a table after them), its memory per stage, and its measured memory
per policy on each catalog card."""

from __future__ import annotations

from sdshape.core import units
from sdshape.core.vocabulary import PER_IMAGE_STAGES
from sdshape.feasibility import measured_fit as feasibility
from sdshape.feasibility.catalog import GPU
from sdshape.present.charts.stage_shares import share_chart
from sdshape.present.report.sections import Cell, Grid, Heading, Picture, Section, Text, cells
from sdshape.result.io import ResultFile
from sdshape.result.model import StageResult

VERDICT_CSS = {"fits": "fits", "needs offload": "offload", "does not fit": "no"}
# Runs whose shares are drawn as a chart (about 0.3 s each on a 2-core CPU); the runs after them show the same
# shares as a table, so a report of thousands of runs takes seconds, not an hour.
MAX_SHARE_CHARTS = 12
SHARE_METRICS = ("params", "time", "memory", "energy")


def rows_by_run(result: ResultFile) -> dict[tuple, dict[str, StageResult]]:
    """A file's rows grouped by run (one pass over the file), each run's by stage."""
    grouped: dict[tuple, dict[str, StageResult]] = {}
    for row in result.rows.values():
        grouped.setdefault(row.id.run_key, {})[row.stage] = row
    return grouped


def shares_of(rows: dict[str, StageResult], run: feasibility.RunProfile) -> dict[str, dict[str, float | None]]:
    memory = {s: run.stages[s].weights + run.stages[s].activations for s in PER_IMAGE_STAGES}
    total_memory = sum(memory.values()) or 1
    return {
        stage: {
            "params": rows[stage].cost.param_share,
            "time": rows[stage].timing.time_share,
            "memory": memory[stage] / total_memory,
            "energy": rows[stage].energy.share,
        }
        for stage in PER_IMAGE_STAGES
    }


def throttle_note(throttled: list[str]) -> str:
    """What a run's throttled stages mean for its times, in words."""
    return (
        f"Throttled while timed: {'; '.join(throttled)}: NVML reported a power or thermal slowdown during the "
        "rounds, so these times hold the machine's state as much as the model's (kept, flagged, and left out "
        "of history's step detection)"
    )


def _fit_css(fits: bool) -> str:
    return "fits" if fits else "no"


def _share_grid(shares: dict[str, dict[str, float | None]]) -> Grid:
    grid = Grid(["stage", *(f"{metric} share" for metric in SHARE_METRICS)])
    for stage, values in shares.items():
        grid.rows.append(cells(stage, *(units.share(values[metric]) for metric in SHARE_METRICS)))
    return grid


def run_sections(
    index: int, run: feasibility.RunProfile, file: str, rows: dict[str, StageResult], gpus: list[GPU], chart: bool
) -> list[Section]:
    matrix = [feasibility.feasibility(run, gpu) for gpu in gpus]
    shares = shares_of(rows, run)
    if chart:
        picture: Section = Picture(f"shares-{index}.png", share_chart(run.label, shares), f"shares of {run.label}")
    else:
        picture = _share_grid(shares)
    stages = Grid(["stage", "weights", "activations", "activations from"])
    for stage, cost in run.stages.items():
        sizes = units.size(cost.weights), units.size(cost.activations)
        stages.rows.append(cells(stage, *sizes, cost.activations_source))
    sections: list[Section] = [
        Heading(run.label),
        Text(f"Measured on {run.measured_on}; file `{file}`."),
        picture,
        stages,
        Text(f"CUDA context: {units.size(run.context)} ({run.context_source})."),
    ]
    throttled = [f"{stage} ({row.throttled})" for stage, row in rows.items() if row.throttled]
    if throttled:
        sections.append(Text(f"{throttle_note(throttled)}.", note=True))
    policies = list(feasibility.POLICIES)
    per_gpu = Grid(["GPU", "VRAM", "verdict (measured memory)", *policies])
    for item, gpu in zip(matrix, gpus, strict=True):
        needs = [
            Cell(f"{units.size(item['needs_bytes'][p])} {'ok' if fits else 'no'}", _fit_css(fits))
            for p, fits in ((p, item["fits"][p]) for p in policies)
        ]
        verdict = Cell(item["verdict"], VERDICT_CSS[item["verdict"]])
        per_gpu.rows.append([Cell(gpu.name), Cell(f"{gpu.vram_gib:g} GiB"), verdict, *needs])
    note = "Memory at this run's own conditions; for time on other cards and other settings, `sdshape fit`."
    return [*sections, per_gpu, Text(note, note=True)]
