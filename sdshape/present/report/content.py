"""What ``sdshape report`` says, as one list of sections (rendered by ``sdshape.present.report.sections``).

For each measured run: a chart of every stage's share of the parameters, the
time, the memory (weights + activations) and the energy; the feasibility matrix
of the static model (named shapes x catalog cards, each cell labelled as model
or, where a given run matches it, as measurement); each run's measured memory per policy; the fits measured under
``--vram-cap`` next to what the model predicts for them; and the explorations
(``shapes.json``) passed beside the results.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdshape.core import units
from sdshape.core.errors import UsageError
from sdshape.core.vocabulary import STAGES
from sdshape.feasibility import measured_fit as feasibility
from sdshape.feasibility.catalog import GPU, load_catalog, pick
from sdshape.feasibility.quality_field import committed_rows
from sdshape.measurement.profiling import CLASSES, class_shares
from sdshape.present.charts.explorer import pareto_png
from sdshape.present.charts.field_shares import field_png
from sdshape.present.charts.stage_shares import kernel_chart
from sdshape.present.report.matrix_section import model_matrix_sections
from sdshape.present.report.progress import LateProgress
from sdshape.present.report.quality_section import committed_document, quality_sections
from sdshape.present.report.runs import MAX_SHARE_CHARTS, rows_by_run, run_sections
from sdshape.present.report.sections import Bullets, Cell, Grid, Heading, Picture, Section, Text, cells
from sdshape.result.io import ResultFile, load
from sdshape.result.model import StageResult
from sdshape.shapes.shapes_document import conditions, is_shapes_document

COST_COLUMNS = ("kind", "component", "params", "s/image", "s per 100 M params", "activations per 100 M")
INTRO = (
    "The feasibility matrix is the **static model's** (`sdshape fit`): memory from traced activation peaks and "
    "exact weight bytes, time from a per-op roofline calibrated per GPU architecture, each with the error its "
    "validation found. A run given to this report replaces the model's cell for its own card and conditions. "
    "Each run's own section shows its measured memory per stage and policy, at the run's conditions."
)


@dataclass
class Inputs:
    """What the given files hold, sorted by kind."""

    gpus: list[GPU]
    runs: list[tuple[feasibility.RunProfile, str, ResultFile]] = field(default_factory=list)
    capped: list[tuple[str, StageResult]] = field(default_factory=list)
    explorations: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    profiled: list[StageResult] = field(default_factory=list)


def shapes_document(path: str) -> dict[str, Any] | None:
    """A ``sdshape shapes --out`` document, or None when the file is something else."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, MemoryError):  # ValueError: bad JSON
        return None  # result.io.load gives the proper one-line error
    return document if is_shapes_document(document) else None


def gather(paths: list[Any], gpu_names: list[str] | None, catalog_file: str | None, progress: Any = None) -> Inputs:
    """``paths``: result files and shapes documents by path, or result files already read (from the store)."""
    catalog = load_catalog(catalog_file)
    inputs = Inputs(pick(catalog, gpu_names))
    progress = progress or LateProgress()
    task = progress.add_task("report: reading files", total=len(paths))
    for given in paths:
        if isinstance(given, ResultFile):
            result, path = given, str(given.path)
        else:
            path = given
            exploration = shapes_document(path)
            if exploration is not None:
                if "cost_per_100m" in exploration:
                    inputs.explorations.append((str(path), exploration))
                continue
            result = load(path)
        found, left_out = feasibility.profiles(result, catalog)
        inputs.skipped += left_out
        inputs.runs += [(run, str(path), result) for run in found]
        inputs.capped += [(str(path), row) for row in result.rows.values() if row.cap]
        inputs.profiled += [row for row in result.rows.values() if class_shares(row.kernels)]
        progress.update(task, advance=1)
    if not inputs.runs and not inputs.explorations and not inputs.capped and not inputs.profiled:
        why = f" ({'; '.join(inputs.skipped)})" if inputs.skipped else ""
        raise UsageError(
            "report: no complete run (text_encoder, denoise_loop and vae_decode all ok, memory readings valid) "
            f"and no measured shapes.json in the given files{why}"
        )
    return inputs


def _kernel_sections(inputs: Inputs) -> list[Section]:
    """Each profiled stage's kernel time by class, as a stacked bar, and the GPU's busy fraction."""
    bars, grid = [], Grid(["stage", "backend", "conditions", "GPU busy", *CLASSES])
    for row in inputs.profiled:
        shares = class_shares(row.kernels) or {}
        conditions = f"{row.id.shape} {row.id.precision} {row.id.resolution}px"
        bars.append((f"{row.stage} · {row.id.backend} · {conditions}", shares))
        busy = row.kernels.busy_fraction if row.kernels else None
        busy_text = "n/a (CPU)" if busy is None else f"{busy:.0%}" + (" host-bound" if row.host_bound else "")
        grid.rows.append(
            cells(row.stage, row.id.backend, conditions, busy_text, *(units.share(shares[k]) for k in CLASSES))
        )
    return [
        Heading("Where in each stage the time goes"),
        Text(
            "One profiled round per stage, outside the timed rounds: the share of the stage's kernel time in each "
            "class (CUDA kernels on a GPU, top-level ATen ops on the CPU). Host-bound: the GPU was busy less than "
            "80% of the round, so the stage's time says more about the host than about the model.",
            note=True,
        ),
        Picture("kernel-classes.png", kernel_chart(bars), "kernel classes per stage and backend"),
        grid,
    ]


def _cap_sections(inputs: Inputs) -> list[Section]:
    """The fits measured under --vram-cap, each next to the model's prediction for the same cap."""
    grid = Grid(["file", "run", "stage", "cap", "measured", "model: VRAM needed (all resident)", "model predicts"])
    models: dict[tuple, feasibility.RunProfile] = {}
    for run, _, _ in inputs.runs:
        models.setdefault(tuple(run.key.values()), run)  # the first given run of a configuration, as before
    for file, row in sorted(inputs.capped, key=lambda item: (item[0], STAGES.index(item[1].stage))):
        cap = row.cap
        measured = {True: "fits", False: "oom"}.get(cap.fits, row.status)
        model = models.get(row.id.run_key)
        if model is None:
            need, predicted = "-", "no uncapped run of this configuration given"
        else:
            needed = feasibility.stage_need(model, row.stage)
            need, predicted = units.size(needed), "fits" if needed <= cap.cap_bytes else "oom"
        label = " ".join(str(v) for v in row.id.run_key)
        css = "fits" if measured == predicted else "no"
        grid.rows.append([*cells(Path(file).name, label, row.stage, units.size(cap.cap_bytes)),
                          Cell(measured), Cell(need), Cell(predicted, css)])  # fmt: skip
    return [
        Heading("Measured under --vram-cap, beside the model"),
        Text(
            "Each capped stage ran with all three components resident; the model's figure is the resident "
            "weights, that stage's activations and the CUDA context, from an uncapped run of the same "
            "configuration. Green: the model agreed with the measurement.",
            note=True,
        ),
        grid,
    ]


def _exploration_sections(index: int, file: str, document: dict[str, Any]) -> list[Section]:
    grid = Grid(list(COST_COLUMNS))
    for row in document["cost_per_100m"]:
        grid.rows.append(
            cells(
                row["kind"],
                row["component"],
                units.count(row["params"]),
                units.seconds(row["seconds_per_image"]),
                units.seconds(row["seconds_per_100m"]),
                units.size(row["activation_bytes_per_100m"]),
            )
        )
    sections: list[Section] = [
        Heading(f"Parameter budget {document['budget']:.3g}: spent differently"),
        Text(f"Conditions: {conditions(document)}; file `{file}`."),
        Picture(f"pareto-{index}.png", pareto_png(document), "Pareto chart"),
        grid,
    ]
    check = document.get("check")
    if check and check.get("difference") is not None:
        sections.append(
            Text(
                f"Composition check: {check['name']} end to end {units.seconds(check['end_to_end_s'])}, "
                f"composed {units.seconds(check['composed_s'])} ({check['difference']:+.1%})."
            )
        )
    return sections


def _field_sections() -> list[Section]:
    """The seed question, from the configs alone: how published systems split parameters, bytes and FLOPs."""
    rows = committed_rows()
    lines = [
        f"{row['shape']} ({row['year']}): text encoders {units.share(row['param_share']['text_encoder'])} of "
        f"{units.count(sum(row['params'].values()))} parameters, {units.share(row['flops_share']['text_encoder'])} "
        f"of {units.count(sum(row['flops_per_image'].values()))} FLOPs per image"
        for row in rows
    ]
    return [
        Heading("How the field re-spent its parameters"),
        Text(
            "Static, from the published configs on the meta device (`sdshape inspect --all`), at each pipeline's "
            "own resolution, steps and guidance. Not a measurement."
        ),
        Picture("field.png", field_png(rows), "parameter, weight-byte and FLOP shares of published systems"),
        Bullets(lines),
    ]


def build(
    paths: list[str], gpu_names: list[str] | None, catalog_file: str | None, progress: Any = None
) -> list[Section]:
    """The whole report as sections, its charts among them as PNG bytes. ``progress``: an
    ``add_task``/``update`` display (:class:`~sdshape.present.report.progress.LateProgress`)."""
    progress = progress or LateProgress()
    inputs = gather(paths, gpu_names, catalog_file, progress)
    sections: list[Section] = [Heading("sdshape report", 1), Text(INTRO)]
    sections += model_matrix_sections(inputs.runs, inputs.gpus)
    if len(inputs.runs) > MAX_SHARE_CHARTS:
        sections.append(
            Text(
                f"{len(inputs.runs)} runs: the first {MAX_SHARE_CHARTS} have their shares drawn as charts, the "
                "others as tables.",
                note=True,
            )
        )
    task = progress.add_task("report: runs", total=len(inputs.runs))
    grouped: dict[int, dict[tuple, dict[str, StageResult]]] = {}
    for index, (run, file, result) in enumerate(inputs.runs, start=1):
        if id(result) not in grouped:
            grouped[id(result)] = rows_by_run(result)
        rows = grouped[id(result)][tuple(run.key.values())]
        sections += run_sections(index, run, file, rows, inputs.gpus, chart=index <= MAX_SHARE_CHARTS)
        progress.update(task, advance=1)
    if inputs.profiled:
        sections += _kernel_sections(inputs)
    if inputs.capped:
        sections += _cap_sections(inputs)
    for index, (file, document) in enumerate(inputs.explorations, start=1):
        sections += _exploration_sections(index, file, document)
    sections += _field_sections()
    sections += quality_sections(committed_document())
    if inputs.skipped:
        sections += [Heading("Runs left out"), Bullets(inputs.skipped)]
    sections += [Heading("Policies"), Bullets([f"`{name}`: {text}" for name, text in feasibility.POLICIES.items()])]
    sections += [Heading("GPU catalog sources"), Bullets([f"{g.name}: {g.source}" for g in inputs.gpus])]
    return sections
