"""What ``history`` reads: each completed row as a point on its series, from result files or from the
store's history columns (no row JSON parsed: a store of 10,000 rows is read in under a second)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdshape.result.io import ResultFile, machine_label
from sdshape.result.records import Throttle
from sdshape.store.series import row_values, values_of


@dataclass
class Point:
    when: str
    host: str | None
    median: float
    spread: float  # IQR of the rounds
    rounds: int
    path: Path
    versions: dict[str, Any]
    methods: dict[str, int]
    # the run's reference workload as history compares it (``ReferenceWorkload.summary``); None: not recorded
    reference: dict[str, dict[str, Any]] | None = None
    throttled: str | None = None  # ``throttled: REASONS``: timed under a power or thermal slowdown (not a step point)

    @property
    def label(self) -> str:
        return f"{self.when[:16].replace('T', ' ')}" + (f" · {self.host}" if self.host else "")

    @property
    def standard_error(self) -> float:
        sigma = self.spread / 1.349 if self.spread else 0.0
        return sigma / math.sqrt(max(self.rounds, 1))

    def weight(self, run_to_run: float, scale: float = 1.0) -> float:
        """1 / (standard error^2 + (run-to-run sigma * level)^2), in units of ``scale`` seconds (a split's z
        is the same in any unit; in the timeline's own the squares stay far from overflow), kept within
        1e-300 to 1e300 so that no sum or quotient of weights overflows or divides by zero."""
        error, level = self.standard_error / scale, run_to_run * self.median / scale
        variance = error * error + level * level  # a product overflows to inf; ** would raise
        if not variance > 1e-300:
            return 1e300
        return max(1.0 / variance, 1e-300)


@dataclass(frozen=True)
class Observation:
    """One ok row as history needs it: its key and information fields, and its point."""

    values: dict[str, Any]
    point: Point
    gpu: str  # the machine's label, for --gpu


def observations(files: list[ResultFile]) -> list[Observation]:
    found = []
    for result in files:
        for row in result.rows.values():
            if row.status != "ok" or row.median is None:
                continue
            values = row_values(row, result.machine_info)
            point = Point(
                result.datetime or "", values.get("hostname"), row.median, row.timing.iqr or 0.0, len(row.rounds),
                result.path, {}, row.conditions.methods, row.reference.summary() if row.reference else None,
                throttled=row.throttled,
            )  # fmt: skip
            found.append(Observation(values, point, result.gpu))
    return found


def stored_observations(engine: Any, skipped: list[str] | None = None) -> list[Observation]:
    """The store's ok rows as observations, from its history columns (``sdshape.store.read.history_rows``);
    a stored file holding a figure no results file may hold is left out, with a note in ``skipped``."""
    from sdshape.store.read import history_rows

    found = []
    for machine, ident, row, when, path in history_rows(engine, skipped):
        values = values_of(ident, machine)
        methods = dict(row.methods or {})
        throttle = Throttle.from_json(row.throttle) if isinstance(row.throttle, dict) else None
        point = Point(when or "", values.get("hostname"), row.median_s, row.iqr_s or 0.0, row.n_rounds or 0,
                      Path(path), {}, methods, row.reference or None,
                      throttled=throttle.label if throttle else None)  # fmt: skip
        found.append(Observation(values, point, machine_label(machine)))
    return found
