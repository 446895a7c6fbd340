"""The report's feasibility matrix: the static model's committed matrix, a given run in its own cell.

Read from ``sdshape/data/feasibility_matrix.json`` (``maintainer/feasibility_matrix.py``), so the report needs
no torch; a run given to the report on a catalog card at a row's conditions replaces the model there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdshape.feasibility import measured_fit as feasibility
from sdshape.feasibility.card_matrix import committed_matrix
from sdshape.feasibility.catalog import GPU, load_catalog
from sdshape.present.report.sections import Cell, Grid, Heading, Section, Text
from sdshape.result.io import ResultFile

Run = tuple[feasibility.RunProfile, str, ResultFile]


def _model_cell(card: dict[str, Any]) -> Cell:
    if not card["supported"]:
        return Cell("unsupported", "no")
    if not card["fits"]:
        return Cell("does not fit", "no")
    low, high = card["seconds_band"]
    text = f"{card['policy'].replace('_', ' ')} · {card['seconds_per_image']:.1f} s ({low:.1f}-{high:.1f})"
    best = card.get("best")
    if best is not None:
        text += f"; fastest: {best['precision']} {best['policy'].replace('_', ' ')} · {best['seconds_per_image']:.1f} s"
    return Cell(text, "fits" if card["policy"] == "all_resident" else "offload")


def _measured_cell(runs: list[Run], gpu: str, row: dict) -> Cell | None:
    """A run given to the report, on this card, at this row's conditions (fp16, batch 1, eager)."""
    for run, file, _ in runs:
        key = run.key
        same = (key["shape"], key["resolution"], key["steps"], key["precision"], key["batch"], key["backend"])
        if run.measured_gpu is None or run.measured_gpu.name != gpu:
            continue
        if same == (row["shape"], row["resolution"], row["steps"], row["precision"], 1, "eager"):
            seconds = sum(cost.measured_s or 0.0 for cost in run.stages.values())
            return Cell(f"measured: {seconds:.2f} s ({Path(file).name})", "fits")
    return None


def _bands(time_model: dict[str, Any]) -> list[str]:
    """The validation bands a matrix was built with (older matrices carry one band)."""
    if "bands" in time_model:
        return [f"{text}." for text in time_model["bands"].values()]
    return [f"{time_model['band']}."]


def model_matrix_sections(runs: list[Run], gpus: list[GPU]) -> list[Section]:
    matrix = committed_matrix()
    rows = matrix["rows"]
    grid = Grid(["GPU", *(f"{r['shape']} {r['resolution']} px {r['steps']} st" for r in rows)])
    own = own_cards(gpus, {card["gpu"] for card in rows[0]["cards"]})
    wanted = {gpu.name for gpu in gpus} - {gpu.name for gpu in own}
    for index, card in enumerate(rows[0]["cards"]):
        if card["gpu"] not in wanted:
            continue
        line = [Cell(card["gpu"])]
        for row in rows:
            entry = row["cards"][index]
            line.append(_measured_cell(runs, entry["gpu"], row) or _model_cell(entry))
        grid.rows.append(line)
    for gpu in own:
        grid.rows.append([Cell(f"{gpu.name} (your catalog)"), *(Cell("not modelled here", "no") for _ in rows)])
    return [
        Heading("Feasibility matrix"),
        Text(
            f"{matrix['label']}. Each cell: the least intrusive policy that fits in fp16 (allocated peak plus a "
            f"0.75 GiB CUDA context), seconds per image and the band its validation found, then the fastest weight "
            f"format and policy that fit. {' '.join(_bands(matrix['time_model']))} "
            f"Host launch cost: {matrix['time_model']['host']}. Generated {matrix['generated']} with torch "
            f"{matrix['torch']} (`python maintainer/feasibility_matrix.py`). Other settings: `sdshape fit SHAPE`.",
            True,
        ),
        grid,
        *own_cards_note(own),
    ]


def own_cards(gpus: list[GPU], in_matrix: set[str]) -> list[GPU]:
    """The cards a --gpu-catalog adds, or redefines with its own figures: the committed matrix has no cell
    for them (it is computed ahead, for the bundled catalog's figures)."""
    bundled = load_catalog()
    return [gpu for gpu in gpus if gpu.name not in in_matrix or bundled.get(gpu.name) != gpu]


def own_cards_note(own: list[GPU]) -> list[Section]:
    if not own:
        return []
    names = ", ".join(f"`{gpu.name}`" for gpu in own)
    return [
        Text(
            f"Not modelled in this matrix: {names}, from your --gpu-catalog. The matrix is computed ahead for "
            "the bundled catalog's figures (`python maintainer/feasibility_matrix.py`, with torch); "
            '`sdshape fit SHAPE --gpu-catalog FILE --gpu "NAME"` answers for your cards. Their measured memory '
            "per policy is in each run's section below.",
            True,
        )
    ]
