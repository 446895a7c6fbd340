"""How well ``history`` and ``compare --store`` find steps: labelled series and their scores.

A false-alarm rate alone says nothing of what a detector misses, and a detection rate alone nothing of
what it cries; both need series whose steps are known. Here a *series* is ``length`` runs of a few rounds
each, drawn from a noise source (recorded runs resampled, or a model: a per-run level shift plus jitter
within a run); a step of size ``s`` multiplies every round of the runs from ``step_at`` on by ``1 + s`` (a
slowdown). Step-free series (``s = 0``) measure false alerts alone.

Definitions (the same in docs/regression-tracking.md, "How well it detects"):

- an *alert* is a definite verdict: a regression or an improvement. history's "suspicious" (too few runs
  after a step, or one run out of line) and compare's "undecided" are not alerts;
- a *true alert* is a regression at the planted step: a history step whose last run before it is within
  ``TOLERANCE`` (1) run of the planted one, or the compare pair that straddles the step (NEW is the first
  run after it). Every other alert is false; the planted step is counted found once. A false regression 2
  or 3 (``NEAR``) runs off the planted step is also counted *misplaced*: the step itself, placed inexactly;
- ``history, whole``: history run once over the whole series;
- ``history, CI``: history run after each new run, from the ``FIRST``-th (5: the fewest runs history reads a
  series' own sigma from); a step at a place no earlier alert named (within ``TOLERANCE``) is a new alert;
- ``compare, CI``: each run from the ``FIRST + 1``-th compared with the one before it, with the run-to-run
  sigma history reads from the runs before it (as ``compare --store`` gets it from the store).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sdshape.core.statistics import median
from sdshape.regression.compare import Floors, compare_time
from sdshape.regression.history import (
    MIN_NOISE_RUNS,
    RUN_TO_RUN,
    STEP_FLOOR,
    Timeline,
    detect_steps,
    judge,
    observed_run_to_run,
)  # fmt: skip
from sdshape.regression.points import Point
from sdshape.result.io import load

ALERTS = ("regression", "improvement")
TOLERANCE = 1
NEAR = 3  # a regression 2 or 3 runs off the step is false, and also counted as "misplaced"
FIRST = MIN_NOISE_RUNS
LENGTH = 20
MIN_AFTER = 4  # a planted step leaves this many runs after it, so a whole series can confirm it


class Noise(Protocol):
    name: str
    source: str

    def run(self, rng: random.Random, level: float) -> list[float]:
        """One run's rounds (seconds) around ``level``."""
        ...


@dataclass(frozen=True)
class ModelNoise:
    """A run's level is ``level * exp(N(0, run_to_run))`` (log-normal: a coefficient of variation of about
    ``run_to_run``), each round that level times ``1 + N(0, within)``."""

    name: str
    run_to_run: float
    within: float  # sigma of a round around its run's level; a within-run IQR/median of 1.349 times this
    source: str
    rounds: int = 10

    def run(self, rng: random.Random, level: float) -> list[float]:
        shifted = level * math.exp(rng.gauss(0.0, self.run_to_run))
        return [shifted * max(1e-3, 1.0 + rng.gauss(0.0, self.within)) for _ in range(self.rounds)]


GPU_MODELS = (
    ModelNoise("model: compiled (CUDA graphs)", 0.011, 0.004 / 1.349,
               "H200 compile:reduce-overhead denoise_loop, 4 A/A runs: run-to-run CV 1.1%, within-run IQR/median 0.4%"),
    ModelNoise("model: eager, GPU-bound", 0.014, 0.013 / 1.349,
               "H200 eager vae_decode, 13 A/A runs: run-to-run CV 1.4%, within-run IQR/median 1.3%"),
    ModelNoise("model: eager, host-bound", 0.143, 0.064 / 1.349,
               "H200 eager denoise_loop, 13 A/A runs: run-to-run CV 14.3%, within-run IQR/median 6.4%"),
)  # fmt: skip


@dataclass(frozen=True)
class RecordedNoise:
    """Recorded runs drawn with replacement: each run's rounds over the median of the run medians."""

    name: str
    runs: tuple[tuple[float, ...], ...]
    source: str

    def run(self, rng: random.Random, level: float) -> list[float]:
        return [level * value for value in rng.choice(self.runs)]


def recorded(name: str, paths: Sequence[Path], stage: str, source: str) -> RecordedNoise:
    """The rounds of ``stage`` in each result file, scaled to a level of 1."""
    runs = []
    for path in paths:
        runs += [row.rounds for row in load(path).rows.values() if row.status == "ok" and row.stage == stage]
    runs = [r for r in runs if r]
    if len(runs) < 2:
        raise ValueError(f"{name}: {len(runs)} run(s) of {stage} in {len(paths)} file(s); need at least 2")
    level = median(median(r) for r in runs)
    return RecordedNoise(name, tuple(tuple(v / level for v in r) for r in runs), source)


@dataclass(frozen=True)
class Series:
    runs: tuple[tuple[float, ...], ...]
    size: float
    step_at: int | None  # the first run after the step; None: no step


def planted(noise: Noise, rng: random.Random, size: float, length: int = LENGTH, at: int | None = None) -> Series:
    """A series with a step of ``size`` at a random place (or ``at``) that leaves ``FIRST`` runs before it
    and ``MIN_AFTER`` after; no step when ``size`` is 0."""
    step_at = None
    if size:
        step_at = at if at is not None else rng.randint(FIRST, length - MIN_AFTER)
    runs = tuple(tuple(noise.run(rng, 1.0 + size if step_at is not None and i >= step_at else 1.0))
                 for i in range(length))  # fmt: skip
    return Series(runs, size, step_at)


def iqr(rounds: Sequence[float]) -> float:
    """The IQR as the result files hold it (pytest-benchmark's: the medians of the lower and upper halves)."""
    ordered, half = sorted(rounds), len(rounds) // 2
    if half == 0:
        return 0.0
    return median(ordered[half + len(rounds) % 2 :]) - median(ordered[:half])


def points_of(runs: Sequence[Sequence[float]]) -> list[Point]:
    """The runs as one timeline's points, in order."""
    return [
        Point(f"2026-01-01T{i:06d}", None, median(rounds), iqr(rounds), len(rounds), Path(f"run-{i:06d}.json"), {},
              {"time": 1})
        for i, rounds in enumerate(runs)
    ]  # fmt: skip


def timeline_of(points: list[Point], settings: Settings) -> Timeline:
    """What ``history.collect`` does for one timeline with no events (no version changes, one method): its
    run-to-run sigma, its steps and their verdicts, without the series key's hashing of every point."""
    timeline = Timeline({}, "labelled", points)
    timeline.run_to_run = max(settings.run_to_run, observed_run_to_run(points))
    timeline.steps = detect_steps(points, settings.floor, timeline.run_to_run)
    judge(timeline)
    return timeline


@dataclass(frozen=True)
class Settings:
    """The thresholds passed as arguments (history's Z_MIN, MIN_RUNS_AFTER and compare's RUN_TO_RUN_Z are
    module constants, read when the detectors run)."""

    floor: float = STEP_FLOOR
    run_to_run: float = RUN_TO_RUN
    time_floor: float = Floors().time
    alpha: float = Floors().alpha


@dataclass
class Outcome:
    found: bool = False
    false: int = 0
    delay: int | None = None  # runs after the step when it was first called (CI modes)
    misplaced: int = 0  # of the false alerts: regressions NEAR runs or fewer off the planted step


def is_misplaced(series: Series, after: int, change: float) -> bool:
    """A regression 2 to NEAR runs off the planted step: the step itself, placed inexactly."""
    if series.step_at is None or change <= 0:
        return False
    return TOLERANCE < abs(after - (series.step_at - 1)) <= NEAR


def is_true(series: Series, after: int, change: float) -> bool:
    return series.step_at is not None and change > 0 and abs(after - (series.step_at - 1)) <= TOLERANCE


def history_whole(series: Series, settings: Settings) -> Outcome:
    outcome = Outcome()
    for step in timeline_of(points_of(series.runs), settings).steps:
        if step.verdict in ALERTS:
            if is_true(series, step.after, step.change) and not outcome.found:
                outcome.found = True
            elif not is_true(series, step.after, step.change):
                outcome.false += 1
                outcome.misplaced += is_misplaced(series, step.after, step.change)
    return outcome


def ci_outcomes(series: Series, settings: Settings, with_compare: bool = True) -> tuple[Outcome, Outcome]:
    """history after each new run, and compare of each new run with the one before it (module docstring)."""
    hist, comp = Outcome(), Outcome()
    named: list[int] = []  # places history already alerted at
    points = points_of(series.runs)
    for length in range(FIRST, len(series.runs) + 1):
        timeline = timeline_of(points[:length], settings)
        for step in timeline.steps:
            if step.verdict not in ALERTS:
                continue
            true = is_true(series, step.after, step.change)
            if true and not hist.found:
                hist.found, hist.delay = True, length - (series.step_at or 0)
            elif not true and all(abs(step.after - place) > TOLERANCE for place in named):
                hist.false += 1
                hist.misplaced += is_misplaced(series, step.after, step.change)
            named.append(step.after)
        if with_compare and length < len(series.runs):
            base, new = series.runs[length - 1], series.runs[length]
            verdict = compare_time(list(base), list(new), settings.time_floor, settings.alpha, timeline.run_to_run)
            if verdict.verdict in ALERTS:
                if length == series.step_at and verdict.verdict == "regression":
                    comp.found, comp.delay = True, 1
                else:
                    comp.false += 1
    return hist, comp


@dataclass
class Score:
    """Counts over many series of one noise source and step size."""

    series: int = 0
    planted: int = 0
    true: int = 0
    false: int = 0
    misplaced: int = 0
    delays: list[int] = field(default_factory=list)

    def add(self, series: Series, outcome: Outcome) -> None:
        self.series += 1
        self.planted += series.step_at is not None
        self.true += outcome.found
        self.false += outcome.false
        self.misplaced += outcome.misplaced
        if outcome.delay is not None:
            self.delays.append(outcome.delay)

    @property
    def precision(self) -> float | None:
        return self.true / (self.true + self.false) if self.true + self.false else None

    @property
    def recall(self) -> float | None:
        return self.true / self.planted if self.planted else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p is not None and r is not None and p + r > 0 else None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "series": self.series, "planted": self.planted, "true": self.true, "false": self.false,
            "precision": self.precision, "recall": self.recall, "f1": self.f1,
            "misplaced": self.misplaced, "false_per_series": self.false / self.series if self.series else None,
            "median_delay_runs": median(self.delays) if self.delays else None,
        }  # fmt: skip


DETECTORS = ("history, whole", "history, CI", "compare, CI")


def evaluate(
    noise: Noise, size: float, count: int, seed: int, settings: Settings | None = None, length: int = LENGTH,
    detectors: Sequence[str] = DETECTORS,
) -> dict[str, Score]:  # fmt: skip
    """Each detector's score over ``count`` series of ``noise`` with a step of ``size``; the series depend
    on the seed, the noise's name and the size only (``random.Random`` of a string: the same on any machine)."""
    settings = settings or Settings()
    rng = random.Random(f"{seed}:{noise.name}:{size}")
    scores = {name: Score() for name in detectors}
    for _ in range(count):
        series = planted(noise, rng, size, length)
        if "history, whole" in scores:
            scores["history, whole"].add(series, history_whole(series, settings))
        if "history, CI" in scores or "compare, CI" in scores:
            hist, comp = ci_outcomes(series, settings, "compare, CI" in scores)
            for name, outcome in (("history, CI", hist), ("compare, CI", comp)):
                if name in scores:
                    scores[name].add(series, outcome)
    return scores
