"""Published quality figures for the zoo's systems and the controlled ablations, read from
``sdshape/data/quality.toml`` and checked on load.

Nothing in that file was measured by sdshape: each row copies a number from the source it names. So a row
that names a metric sdshape does not know, a system not in the zoo, a value outside its metric's range, a
direction that contradicts the metric, or a missing source is a slip in the file: it is refused with one line
naming the row, the field, the bad value and what is allowed, rather than drawn in a chart as if it were true.
Torch-free: ``sdshape report`` reads it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sdshape.core.bounds import Bounds
from sdshape.core.errors import UsageError, choices_error


@dataclass(frozen=True)
class Metric:
    """One benchmark's overall score: its name in tables, its direction and the range its values can take."""

    name: str
    label: str
    higher_is_better: bool
    bounds: Bounds
    digits: int  # as the sources print it

    def shown(self, value: float) -> str:
        return f"{value:.{self.digits}f}"


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("geneval_overall", "GenEval overall", True, Bounds(float, 0, 1), 2),
        Metric("dpg_bench_overall", "DPG-Bench overall", True, Bounds(float, 0, 100), 1),
        # FID is a distance: above 0, and no published zero-shot COCO figure comes near 1000.
        Metric("coco_fid30k_zero_shot", "zero-shot COCO FID-30K", False, Bounds(float, 0, 1000, above=True), 2),
    )
}

FIGURE_FIELDS = ("system", "metric", "value", "higher_is_better", "source", "url", "measured_by", "conditions", "note")
ABLATION_FIELDS = ("study", "source", "url", "table_or_figure", "variable", "points", "finding", "controlled", "note")
POINT_FIELDS = ("setting", "metric", "value")
SOURCED = ("source", "url")  # must name where the number came from: non-empty


@dataclass(frozen=True)
class QualityFigure:
    """One published score of one zoo system, with where it came from and under which conditions."""

    system: str
    metric: str
    value: float
    higher_is_better: bool
    source: str
    url: str
    measured_by: str
    conditions: str
    note: str

    def as_dict(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in FIGURE_FIELDS}


@dataclass(frozen=True)
class AblationPoint:
    """A number the ablation's paper prints: the setting, what was scored (free text: win rates are not one of
    ``METRICS``) and the value."""

    setting: str
    metric: str
    value: float


@dataclass(frozen=True)
class Ablation:
    """A controlled study: one variable changed, the rest of the recipe fixed. ``points`` is empty where the
    paper gives only curves."""

    study: str
    source: str
    url: str
    table_or_figure: str
    variable: str
    points: tuple[AblationPoint, ...]
    finding: str
    controlled: bool
    note: str

    def as_dict(self) -> dict[str, Any]:
        row = {field: getattr(self, field) for field in ABLATION_FIELDS}
        row["points"] = [{"setting": p.setting, "metric": p.metric, "value": p.value} for p in self.points]
        return row


@dataclass(frozen=True)
class QualityData:
    figures: tuple[QualityFigure, ...]
    ablations: tuple[Ablation, ...]

    def for_system(self, system: str, metric: str | None = None) -> list[QualityFigure]:
        return [f for f in self.figures if f.system == system and (metric is None or f.metric == metric)]


def _fields(where: str, row: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """The row as a table with exactly ``fields``: one line naming what is missing or unknown."""
    if not isinstance(row, dict):
        raise UsageError(f"{where}: not a table")
    unknown, missing = sorted(set(row) - set(fields)), [f for f in fields if f not in row]
    if unknown or missing:
        problem = f"unknown fields {unknown}" if unknown else f"missing {', '.join(missing)}"
        raise UsageError(f"{where}: {problem}; fields: {', '.join(fields)}")
    return row


def _text(where: str, row: dict[str, Any], name: str) -> str:
    value = row[name]
    if not isinstance(value, str):
        raise UsageError(f"{where}: {name} = {value!r} is not a string")
    if name in SOURCED and not value.strip():
        raise UsageError(f"{where}: {name} is empty; every figure needs its {name}")
    return value


def _flag(where: str, row: dict[str, Any], name: str) -> bool:
    if not isinstance(row[name], bool):
        raise UsageError(f"{where}: {name} = {row[name]!r}; expected true or false")
    return row[name]


def _figure(where: str, row: Any, systems: tuple[str, ...]) -> QualityFigure:
    row = _fields(where, row, FIGURE_FIELDS)
    system, name = _text(where, row, "system"), _text(where, row, "metric")
    if system not in systems:
        raise choices_error(f"{where}: system", system, list(systems))
    if name not in METRICS:
        raise choices_error(f"{where}: metric", name, list(METRICS))
    metric = METRICS[name]
    metric.bounds.check(f"{where}: {name} value", row["value"])
    higher = _flag(where, row, "higher_is_better")
    if higher != metric.higher_is_better:
        raise UsageError(
            f"{where}: higher_is_better = {str(higher).lower()}, but {metric.label} is "
            f"{'higher' if metric.higher_is_better else 'lower'}-is-better"
        )
    texts = {f: _text(where, row, f) for f in ("source", "url", "measured_by", "conditions", "note")}
    return QualityFigure(system, name, float(row["value"]), higher, **texts)


def _ablation(where: str, row: Any) -> Ablation:
    row = _fields(where, row, ABLATION_FIELDS)
    if not isinstance(row["points"], list):
        raise UsageError(f"{where}: points = {row['points']!r} is not a list")
    points = []
    for number, point in enumerate(row["points"], start=1):
        at = f"{where} point {number}"
        point = _fields(at, point, POINT_FIELDS)
        Bounds(float).check(f"{at}: value", point["value"])
        points.append(AblationPoint(_text(at, point, "setting"), _text(at, point, "metric"), float(point["value"])))
    texts = {f: _text(where, row, f) for f in ("study", "source", "url", "table_or_figure", "variable", "finding",
                                                "note")}  # fmt: skip
    return Ablation(points=tuple(points), controlled=_flag(where, row, "controlled"), **texts)


def parse_quality(text: str, origin: str, systems: tuple[str, ...]) -> QualityData:
    """The file's figures and ablations, each checked; ``systems``: the names a figure may give."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{origin}: not TOML: {error}") from None
    if set(data) - {"figure", "ablation"}:
        raise UsageError(f"{origin}: unknown tables {sorted(set(data) - {'figure', 'ablation'})}; expected "
                         "[[figure]] and [[ablation]]")  # fmt: skip
    figures, ablations = data.get("figure", []), data.get("ablation", [])
    if not isinstance(figures, list) or not isinstance(ablations, list):
        raise UsageError(f"{origin}: figure and ablation must be arrays of tables ([[figure]], [[ablation]])")
    return QualityData(
        tuple(_figure(f"{origin}: figure {n}", row, systems) for n, row in enumerate(figures, start=1)),
        tuple(_ablation(f"{origin}: ablation {n}", row) for n, row in enumerate(ablations, start=1)),
    )


def load_quality(path: str | Path | None = None) -> QualityData:
    """The bundled ``quality.toml`` (or ``path``), checked against the zoo's systems and ``METRICS``."""
    from sdshape.models.zoo import all_shapes

    if path is None:
        text, origin = resources.files("sdshape.data").joinpath("quality.toml").read_text(), "bundled quality.toml"
    else:
        try:
            text, origin = Path(path).read_text(), str(path)
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"{path}: cannot read: {error}") from None
    return parse_quality(text, origin, tuple(all_shapes()))
