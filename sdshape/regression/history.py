"""``sdshape history``: each timeline's medians over time, its steps, and what caused them.

A *timeline* is a series key without its software versions (``sdshape.store.series``): one GPU setup
and configuration followed across driver and library upgrades. Its points are the runs in time order;
a version that changes between two runs is an *event* on it, as is a change of measurement method.

A *step* is a level shift found by binary segmentation: the split maximizing

    z = |mean_right - mean_left| / sqrt(1/W_left + 1/W_right)

where each point's weight is 1 / (its standard error^2 + (run-to-run sigma * level)^2). The run-to-run
sigma is the larger of ``--run-to-run`` (default 1.5%: an H200's A/A runs scattered 1.1% compiled and
1.4% in eager's GPU-bound VAE) and the timeline's own, read robustly from its successive differences (so a
shared CPU's noise is not taken for steps). A split counts when z >= 4 and the level moves by at least
``--threshold`` (3%: with a 5% floor, half of all 5% steps measured just under it); each side is searched
again, up to three steps per timeline. ``bench/detection.py`` measured these defaults on labelled series
(docs/regression-tracking.md, "How well it detects"). Then each step is judged:

- **suspicious**: fewer than two runs after it, or a single run out of line (a step up and straight
  back down): not called a regression until it persists;
- **method changed**: the runs on either side were measured under different method versions;
- **regression** or **improvement** otherwise, attributed to the event at the same place when there is
  one, and called out as the event's effect when timelines of several machines step at that event.

Each step is also attributed, by the reference workload measured in every run, to the machine or
driver (the reference moved with the model) or to the software (only the model moved):
``sdshape.regression.attribution``.

The exit status is 1 when any timeline has a regression, so CI can gate on it.

A run timed while NVML reported a power or thermal slowdown (``sdshape.measurement.clocks``) is no point
of its timeline: it is kept in the timeline's ``throttled`` list, left out of step detection, and counted
in what history prints ("2 throttled runs left out of step detection").
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from sdshape.core.errors import UsageError
from sdshape.core.statistics import median, ratio
from sdshape.regression.attribution import Attribution, attribute_steps
from sdshape.regression.points import Observation, Point, observations
from sdshape.result.io import ResultFile, load
from sdshape.result.model import StageResult
from sdshape.store.series import HARDWARE_FIELDS, SeriesKey, digest, row_values

Z_MIN = 4.0
RUN_TO_RUN = 0.015  # the least run-to-run sigma: H200 A/A runs measured 1.1% (compiled) to 1.4% (eager VAE)
STEP_FLOOR = 0.03  # with RUN_TO_RUN 1.5%: 90%+ of 5% steps found on GPU-like noise (bench/detection.py)
MAX_STEPS = 3
MIN_RUNS_AFTER = 2


@dataclass
class Event:
    after: int  # the last point before it
    changes: dict[str, tuple[Any, Any]]

    @property
    def label(self) -> str:
        return ", ".join(f"{name.removesuffix('_version')} {a} -> {b}" for name, (a, b) in self.changes.items())


@dataclass
class Step:
    after: int
    change: float
    z: float
    verdict: str = "regression"  # regression | improvement | suspicious | method changed
    cause: str | None = None  # the event at the step, in words
    why: str = ""
    shared_with: int = 0  # other timelines stepping at the same event
    attribution: Attribution | None = None  # machine/driver or software, by the reference workload


@dataclass
class Timeline:
    key: dict[str, Any]
    id: str = ""  # the hash of the timeline fields' values
    points: list[Point] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    run_to_run: float = RUN_TO_RUN
    throttled: list[Point] = field(default_factory=list)  # runs timed while throttled: not in points, nor in steps

    @property
    def machine(self) -> tuple:
        return tuple(self.key.get(name) for name in HARDWARE_FIELDS)

    @property
    def name(self) -> str:
        machine = self.key.get("gpu_name") or self.key.get("cpu_model") or "?"
        config = (self.key.get(f) for f in ("stage", "shape", "backend", "precision", "resolution", "steps"))
        return f"{machine}: " + " · ".join(str(value) for value in config if value is not None)


def best_split(points: list[Point], run_to_run: float = RUN_TO_RUN) -> tuple[int, float, float] | None:
    """(index of the last point on the left, z, relative change) of the strongest split, or None.

    Prefix sums of the weights and weighted levels make every split O(1): a store's history walks
    10,000 rows."""
    if len(points) < 2:
        return None
    scale = median(p.median for p in points) or 1.0  # every level in the timeline's own unit
    weights = [p.weight(run_to_run, scale) for p in points]
    levels = [w * (p.median / scale) for w, p in zip(weights, points, strict=True)]
    total_weight, total_level = sum(weights), sum(levels)
    best = None
    left_weight = left_level = 0.0
    for k in range(1, len(points)):
        left_weight += weights[k - 1]
        left_level += levels[k - 1]
        right_weight, right_level = total_weight - left_weight, total_level - left_level
        if not (left_weight > 0 and right_weight > 0):  # rounding: the total less the left part
            continue
        left_mean, right_mean = left_level / left_weight, right_level / right_weight
        z = abs(right_mean - left_mean) / math.sqrt(1 / left_weight + 1 / right_weight)
        change = ratio(right_mean, left_mean)
        if change is None or not math.isfinite(z):
            continue
        if best is None or z > best[1]:
            best = (k - 1, z, change - 1)
    return best


def detect_steps(
    points: list[Point], floor: float = 0.05, run_to_run: float = RUN_TO_RUN, offset: int = 0, depth: int = 0
) -> list[Step]:
    if len(points) < 2 or depth >= MAX_STEPS:
        return []
    split = best_split(points, run_to_run)
    if split is None:
        return []
    k, z, change = split
    if z < Z_MIN or abs(change) < floor:
        return []
    step = Step(offset + k, change, z)
    left = detect_steps(points[: k + 1], floor, run_to_run, offset, depth + 1)
    right = detect_steps(points[k + 1 :], floor, run_to_run, offset + k + 1, depth + 1)
    return sorted([*left, step, *right], key=lambda s: s.after)[:MAX_STEPS]


def observed_run_to_run(points: list[Point]) -> float:
    """The timeline's own run-to-run sigma (relative): the MAD of successive relative differences over
    sqrt(2), robust to the few differences a real step makes. 0 with fewer than five runs."""
    if len(points) < 5:
        return 0.0
    diffs = [r - 1 for a, b in pairwise(points) if (r := ratio(b.median, a.median)) is not None]
    if len(diffs) < 4:
        return 0.0
    center = median(diffs)
    spread = 1.4826 * median(abs(d - center) for d in diffs) / math.sqrt(2)
    return spread if math.isfinite(spread) else 0.0


def events_of(points: list[Point]) -> list[Event]:
    found = []
    for index, (a, b) in enumerate(pairwise(points)):
        changes = {name: (a.versions.get(name), b.versions.get(name)) for name in a.versions}
        # a field one side does not record (a library not loaded in that run) is no event
        changes = {n: pair for n, pair in changes.items() if pair[0] != pair[1] and None not in pair}
        if a.methods.get("time") != b.methods.get("time"):
            changes["time method"] = (a.methods.get("time"), b.methods.get("time"))
        if changes:
            found.append(Event(index, changes))
    return found


def judge(timeline: Timeline) -> None:
    """Each step's verdict and cause (module docstring)."""
    events = {event.after: event for event in timeline.events}
    afters = {step.after: step for step in timeline.steps}
    for step in timeline.steps:
        runs_after = len(timeline.points) - step.after - 1
        back = afters.get(step.after + 1)
        before = afters.get(step.after - 1)
        event = events.get(step.after)
        step.cause = event.label if event else None
        if (back and back.change * step.change < 0) or (before and before.change * step.change < 0):
            step.verdict, step.why = "suspicious", "a single run out of line: the level came straight back"
        elif event and "time method" in event.changes:
            step.verdict, step.why = "method changed", "measured under another method version"
        elif runs_after < MIN_RUNS_AFTER:
            step.verdict = "suspicious"
            step.why = f"{runs_after} run(s) after it: a regression needs {MIN_RUNS_AFTER} to persist"
        else:
            step.verdict = "regression" if step.change > 0 else "improvement"
            step.why = f"persisted over {runs_after} runs"


def collect(
    files: list[ResultFile] | list[Observation],
    key: SeriesKey | None = None,
    floor: float = STEP_FLOOR,
    run_to_run: float = RUN_TO_RUN,
    gpu: str | None = None,
) -> list[Timeline]:
    """Every timeline in ``files`` (result files, or the store's observations; optionally one GPU's),
    with its events and judged steps."""
    key = key or SeriesKey()
    seen = [item for item in files if isinstance(item, Observation)]
    seen += observations([item for item in files if isinstance(item, ResultFile)])
    if gpu is not None:
        chosen = [o for o in seen if gpu.lower() in o.gpu.lower()]
        if not chosen:
            found = ", ".join(sorted({o.gpu for o in seen}))
            raise UsageError(f"history: no results for GPU {gpu!r}; found: {found}")
        seen = chosen
    timelines: dict[str, Timeline] = {}
    for observation in seen:
        values = observation.values
        name = digest(values, key.timeline_fields)
        timeline = timelines.setdefault(name, Timeline({f: values.get(f) for f in key.timeline_fields}, name))
        observation.point.versions = {f: values.get(f) for f in key.events}
        # A throttled run's time is its GPU's power or temperature then: a step there would be the machine's.
        (timeline.throttled if observation.point.throttled else timeline.points).append(observation.point)
    for timeline in timelines.values():
        timeline.points.sort(key=lambda p: (p.when, str(p.path)))
        timeline.throttled.sort(key=lambda p: (p.when, str(p.path)))
        timeline.run_to_run = max(run_to_run, observed_run_to_run(timeline.points))
        timeline.events = events_of(timeline.points)
        timeline.steps = detect_steps(timeline.points, floor, timeline.run_to_run)
        judge(timeline)
        attribute_steps(timeline.points, timeline.steps)
    _share_events(list(timelines.values()))
    return sorted(timelines.values(), key=lambda t: t.name)


def _share_events(timelines: list[Timeline]) -> None:
    """A step that timelines of several machines take at the same event is the event's effect, not a
    machine's noise: ``shared_with`` counts the other machines (by their hardware fields) stepping there."""
    machines: dict[str, set[tuple]] = defaultdict(set)
    for timeline in timelines:
        for step in timeline.steps:
            if step.cause and step.verdict in ("regression", "improvement"):
                machines[step.cause].add(timeline.machine)
    for timeline in timelines:
        for step in timeline.steps:
            if step.cause in machines and step.verdict in ("regression", "improvement"):
                step.shared_with = len(machines[step.cause] - {timeline.machine})


def files_under(folder: Path) -> tuple[list[ResultFile], list[str]]:
    """Every result file under ``folder``, and a note for each JSON file that is not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"history: {folder} is not a directory")
    found: list[ResultFile] = []
    skipped: list[str] = []
    for path in sorted(folder.rglob("*.json")):
        try:
            found.append(load(path))
        except UsageError as error:
            skipped.append(str(error))
    if not found:
        raise UsageError(
            f"history: no result files under {folder}" + (f" ({len(skipped)} JSON files skipped)" if skipped else "")
        )
    return found, skipped


MIN_NOISE_RUNS = 5


def run_to_run_lookup(
    timelines: list[Timeline], key: SeriesKey | None = None
) -> Callable[[StageResult, dict[str, Any]], float | None]:
    """For compare: a row's timeline run-to-run sigma, when its history holds enough runs to read one."""
    key = key or SeriesKey()
    by_id = {timeline.id: timeline for timeline in timelines}

    def lookup(row: StageResult, machine_info: dict[str, Any]) -> float | None:
        values = row_values(row, machine_info)
        timeline = by_id.get(digest(values, key.timeline_fields))
        return timeline.run_to_run if timeline and len(timeline.points) >= MIN_NOISE_RUNS else None

    return lookup


def throttled_note(timelines: list[Timeline]) -> str | None:
    """``2 throttled runs left out of step detection``, or None when no run was throttled."""
    count = sum(len(timeline.throttled) for timeline in timelines)
    if not count:
        return None
    runs = f"{count} throttled run{'s' if count > 1 else ''}"
    return f"{runs} left out of step detection (timed under a power or thermal slowdown)"


def regressions(timelines: list[Timeline]) -> list[tuple[Timeline, Step]]:
    return [(t, s) for t in timelines for s in t.steps if s.verdict == "regression"]
