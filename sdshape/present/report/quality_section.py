"""The report's "The field: quality against cost" section, and ``inspect --all --quality --out``'s quality.md.

The same sections for both, built from a ``quality_field.quality_document``: the chart, the table of scores
beside stored bytes, peak VRAM and seconds on the card, the table of text-encoder shares beside the scores, the
controlled ablations, and every figure with its source. The report builds its document from the committed
``field.json`` and ``field_cost.json`` (no torch); the CLI from a live count and ``fit``.
"""

from __future__ import annotations

from typing import Any

from sdshape.feasibility.quality import load_quality
from sdshape.feasibility.quality_field import (
    ABLATION_COLUMNS,
    COST_COLUMNS,
    NO_FIGURE,
    READING,
    SHARE_COLUMNS,
    ablation_rows,
    committed_costs,
    committed_rows,
    conditions_line,
    cost_rows,
    figure_lines,
    quality_document,
    share_rows,
)
from sdshape.present.charts.quality_cost import quality_png
from sdshape.present.report.sections import Bullets, Grid, Heading, Picture, Section, Text, cells

TITLE = "The field: quality against cost"


def committed_document() -> dict[str, Any]:
    """The document the report shows: committed counts and costs, the bundled figures (checked on load)."""
    return quality_document(committed_rows(), committed_costs(), load_quality())


def quality_sections(document: dict[str, Any], picture: str = "quality.png") -> list[Section]:
    c = document["conditions"]
    front = document["pareto"]["geneval_overall"]
    return [
        Heading(TITLE),
        Text(
            f"Each published system's quality figures (`sdshape/data/quality.toml`: nothing here was measured by "
            f"sdshape) beside what it costs on the {c['card']} by the static model (`sdshape fit`): stored "
            f"{c['precision']} weights, the least intrusive policy that fits, its peak VRAM and seconds per image "
            f"with the band its validation found. Conditions: {conditions_line(document)}. A cell without a "
            f'figure says "{NO_FIGURE}"; [n] numbers the figures listed below with their sources.'
        ),
        Text(f"**{READING}**"),
        Picture(picture, quality_png(document), "published quality against peak VRAM and seconds per image"),
        Text(
            f"On the GenEval Pareto front on the {c['card']}: by peak VRAM {', '.join(front['peak_bytes'])}; by "
            f"seconds per image {', '.join(front['seconds_per_image'])}.",
            note=True,
        ),
        Grid(list(COST_COLUMNS), [cells(*row) for row in cost_rows(document)]),
        Heading("Text-encoder share beside quality", 3),
        Text(
            f"The text encoders' share of the parameters and of the stored {c['precision']} bytes (what a card must "
            "hold), beside the same figures.",
            note=True,
        ),
        Grid(list(SHARE_COLUMNS), [cells(*row) for row in share_rows(document)]),
        Heading("The controlled evidence: published ablations", 3),
        Text(
            "One variable changed, the rest of the recipe fixed. Only numbers the papers print are given; where "
            "none are recorded, the note says why (curves only, or the paper not read).",
            note=True,
        ),
        Grid(list(ABLATION_COLUMNS), [cells(*row) for row in ablation_rows(document)]),
        Heading("The figures and their sources", 3),
        Bullets(figure_lines(document)),
    ]
