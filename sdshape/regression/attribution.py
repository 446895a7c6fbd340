"""Whose step is it: the machine's or the software's, told by the reference workload measured beside it.

Every run records a reference workload (``sdshape.measurement.reference_workload``: a fixed GEMM and
memory copies that no sdshape code touches). At a step of a timeline, each of its figures is compared
between the runs on either side of the step (back to the previous step, on to the next one), among the
runs whose figure was measured under the same conditions (size, dtype, device, method):

    change = median(after) / median(before) - 1
    noise  = sigma * sqrt(1/n_before + 1/n_after)

where sigma is the figure's own run-to-run sigma: the largest of :data:`REFERENCE_FLOOR`, the robust
spread of its successive run-to-run differences (five runs or more) and its median within-run spread
(IQR / 1.349). A figure *moved* when |change| >= :data:`REFERENCE_Z` x noise. The step is then:

- **machine/driver**: a figure moved the way the model did (both slower, or both faster), by at least
  :data:`EXPLAINS` of the model's own change in throughput;
- **partly machine/driver**: it moved the same way, by less: the machine explains part of the step;
- **unclear**: a figure moved, the other way;
- **software**: every figure held within its noise: the machine did what it did before, the code did not;
- **no reference recorded**: no figure was measured on both sides (runs from before the reference
  existed, or ``--no-reference``); **reference conditions changed**: only figures of different sizes,
  dtypes or methods on the two sides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Protocol

from sdshape.core.statistics import median
from sdshape.regression.points import Point

REFERENCE_Z = 3.0
REFERENCE_FLOOR = 0.005  # 0.5%: no figure is trusted to repeat closer than this from run to run
EXPLAINS = 0.5  # a reference that moved at least half as much as the model explains the step
LABELS = {"gemm": "GEMM", "device_copy": "device copy", "host_to_device": "host-to-device copy"}

MACHINE, PARTLY, UNCLEAR, SOFTWARE = "machine/driver", "partly machine/driver", "unclear", "software"
NO_REFERENCE, CONDITIONS_CHANGED = "no reference recorded", "reference conditions changed"


class StepLike(Protocol):
    after: int
    change: float  # relative change of the model's time


@dataclass(frozen=True)
class FigureMove:
    """One reference figure across a step."""

    name: str
    unit: str
    before: float
    after: float
    runs_before: int
    runs_after: int
    sigma: float  # the figure's run-to-run sigma, relative

    @property
    def change(self) -> float:
        return self.after / self.before - 1

    @property
    def noise(self) -> float:
        """The relative change's own sigma, from the figure's sigma and the runs on each side."""
        return self.sigma * math.sqrt(1 / self.runs_before + 1 / self.runs_after)

    @property
    def moved(self) -> bool:
        return abs(self.change) >= REFERENCE_Z * self.noise

    @property
    def text(self) -> str:
        label = LABELS.get(self.name, self.name)
        return (
            f"{label} {self.before:.3g} -> {self.after:.3g} {self.unit} "
            f"({self.change:+.1%}, noise ±{REFERENCE_Z * self.noise:.1%})"
        )


@dataclass(frozen=True)
class Attribution:
    verdict: str  # machine/driver | partly machine/driver | unclear | software | no reference recorded | ...
    figures: list[FigureMove] = field(default_factory=list)  # the figures behind the verdict
    note: str = ""

    @property
    def text(self) -> str:
        """E.g. ``GEMM 312 -> 281 TFLOP/s (-9.9%, noise ±1.2%) at the same step: machine/driver``."""
        shown = "; ".join(figure.text for figure in self.figures)
        said = f"{shown} at the same step: {self.verdict}" if shown else self.verdict
        return f"{said} ({self.note})" if self.note else said


def _values(points: list[Point], name: str) -> list[tuple[float, float, str]]:
    """(median, spread, conditions) of one figure over ``points``, where it was measured."""
    found = []
    for point in points:
        figure = (point.reference or {}).get(name)
        value = figure.get("median") if isinstance(figure, dict) else None
        if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
            spread = figure.get("spread")
            spread = spread if isinstance(spread, (int, float)) and math.isfinite(spread) and spread >= 0 else 0.0
            found.append((float(value), float(spread), str(figure.get("conditions"))))
    return found


def _sigma(values: list[float], spreads: list[float]) -> float:
    """The figure's relative run-to-run sigma (module docstring)."""
    sigma = max(REFERENCE_FLOOR, median(spreads) / 1.349 if spreads else 0.0)
    if len(values) >= 5:
        diffs = [b / a - 1 for a, b in pairwise(values)]
        center = median(diffs)
        spread = 1.4826 * median(abs(d - center) for d in diffs) / math.sqrt(2)
        if math.isfinite(spread):
            sigma = max(sigma, spread)
    return sigma


def figure_move(name: str, before: list[Point], after: list[Point]) -> FigureMove | str | None:
    """The figure across the step, CONDITIONS_CHANGED when its conditions differ there, None when a side
    lacks it. Each side keeps the runs measured under the conditions nearest the step."""
    left, right = _values(before, name), _values(after, name)
    if not left or not right:
        return None
    near_left, near_right = left[-1][2], right[0][2]
    if near_left != near_right:
        return CONDITIONS_CHANGED
    left = [v for v in left if v[2] == near_left]
    right = [v for v in right if v[2] == near_right]
    both = left + right
    unit = next((str(p.reference[name].get("unit")) for p in before if p.reference and name in p.reference), "")
    return FigureMove(
        name, unit, median(v[0] for v in left), median(v[0] for v in right), len(left), len(right),
        _sigma([v[0] for v in both], [v[1] for v in both]),
    )  # fmt: skip


def attribute(points: list[Point], step: StepLike, start: int, end: int) -> Attribution:
    """The step's attribution from the runs ``start..step.after`` before it and ``step.after+1..end`` after."""
    before, after = points[start : step.after + 1], points[step.after + 1 : end + 1]
    names = dict.fromkeys(name for p in (*before, *after) for name in (p.reference or {}))
    moves = {name: figure_move(name, before, after) for name in names}
    compared = [move for move in moves.values() if isinstance(move, FigureMove)]
    if not compared:
        if CONDITIONS_CHANGED in moves.values():
            return Attribution(CONDITIONS_CHANGED, note="its sizes, dtypes or method differ on the two sides")
        return Attribution(NO_REFERENCE)
    model = 1 / (1 + step.change) - 1  # the model's change in throughput, as the figures are throughputs
    same = [m for m in compared if m.moved and m.change * model > 0]
    other = [m for m in compared if m.moved and m.change * model < 0]
    if same:
        strongest = max(same, key=lambda m: abs(m.change) / m.noise)
        if abs(strongest.change) >= EXPLAINS * abs(model):
            return Attribution(MACHINE, same)
        note = f"it moved less than {EXPLAINS:.0%} of the model's {model:+.1%} throughput change"
        return Attribution(PARTLY, same, note)
    if other:
        return Attribution(UNCLEAR, other, f"the reference moved the other way from the model's {model:+.1%}")
    return Attribution(SOFTWARE, compared)


def attribute_steps(points: list[Point], steps: list[Any]) -> None:
    """Each step's ``attribution``, each compared over the runs between its neighbouring steps."""
    ordered = sorted(steps, key=lambda s: s.after)
    bounds = [-1, *(s.after for s in ordered), len(points) - 1]
    for index, step in enumerate(ordered):
        step.attribution = attribute(points, step, bounds[index] + 1, bounds[index + 2])
