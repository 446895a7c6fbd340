"""The dashboard's data: each timeline of ``history`` as plain JSON-ready values.

History's records grow (a step's reference-workload attribution, a point left out for throttling): every
field this module does not know by name is still carried, under ``extra``, so a page shows what history
found without this module changing first. Known fields are read with defaults for the same reason.
"""

from __future__ import annotations

import dataclasses
from itertools import pairwise
from typing import Any

from sdshape.core.statistics import median, ratio
from sdshape.regression.history import Timeline

POINT_FIELDS = {"when", "host", "median", "spread", "rounds", "path", "versions", "methods", "reference", "throttled"}
STEP_FIELDS = {"after", "change", "z", "verdict", "cause", "why", "shared_with", "attribution"}
TIMELINE_FIELDS = {"key", "id", "points", "events", "steps", "run_to_run", "throttled"}
# The filters of the index: a key field, or (driver) a version that can change along a timeline.
FILTERS = ("gpu", "driver", "backend", "shape", "stage")
REFERENCE_MARK = "reference"  # an event field naming the reference workload
REFERENCE_LABELS = {"gemm": "GEMM", "device_copy": "device copy", "host_to_device": "host-to-device copy"}


def plain(value: Any) -> Any:
    """``value`` as JSON values: dataclasses and mappings as objects, sequences as lists, others as text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(item) for item in value]
    return str(value)


def extra(record: Any, known: set[str]) -> dict[str, Any]:
    """The record's fields not in ``known`` (those history added since), as JSON values; empty ones left out."""
    if dataclasses.is_dataclass(record):
        names = [field.name for field in dataclasses.fields(record)]
    else:
        names = list(getattr(record, "__dict__", {}))
    found = {name: plain(getattr(record, name, None)) for name in names if name not in known}
    return {name: value for name, value in found.items() if value not in (None, "", [], {})}


def machine_of(key: dict[str, Any]) -> str:
    return str(key.get("gpu_name") or key.get("cpu_model") or "?")


def event_kind(changes: dict[str, Any]) -> str:
    if any(REFERENCE_MARK in name for name in changes):
        return "reference"
    return "method" if any("method" in name for name in changes) else "version"


def _point(point: Any) -> dict[str, Any]:
    label = getattr(point, "label", None) or str(getattr(point, "when", ""))
    return {
        "when": str(getattr(point, "when", "") or ""),
        "label": label,
        "host": getattr(point, "host", None),
        "median": getattr(point, "median", None),
        "iqr": getattr(point, "spread", None),
        "rounds": getattr(point, "rounds", None),
        "path": str(getattr(point, "path", "") or ""),
        "versions": plain(getattr(point, "versions", {}) or {}),
        "reference": plain(getattr(point, "reference", None) or {}),
        "extra": extra(point, POINT_FIELDS | {"label"}),
    }


def reference_events(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Where the reference workload itself changed between two runs: a figure first (or no longer)
    recorded, or measured under other conditions (size, dtype, device, method). Its figures on either
    side of such a change are not compared, so a step there is not told apart by it."""
    found = []
    for index in range(len(points) - 1):
        before, after = points[index]["reference"], points[index + 1]["reference"]
        if not isinstance(before, dict) or not isinstance(after, dict):
            continue
        changes = {}
        for name in sorted(set(before) | set(after)):
            a, b = before.get(name), after.get(name)
            a_conditions = a.get("conditions") if isinstance(a, dict) else None
            b_conditions = b.get("conditions") if isinstance(b, dict) else None
            if a_conditions != b_conditions:
                changes[f"reference {name}"] = [a_conditions, b_conditions]
        if changes:
            names = [REFERENCE_LABELS.get(n.removeprefix("reference "), n.removeprefix("reference ")) for n in changes]
            label = "reference workload: " + ", ".join(names) + " " + _how(list(changes.values()))
            found.append({"after": index, "label": label, "kind": "reference", "changes": changes})
    return found


def _how(pairs: list[list[Any]]) -> str:
    if all(a is None for a, _ in pairs):
        return "first recorded"
    if all(b is None for _, b in pairs):
        return "no longer recorded"
    return "measured under other conditions"


def reference_series(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The reference figure drawn beside the model's times (GEMM when recorded): its values and unit."""
    names = [name for point in points for name in point["reference"] if isinstance(point["reference"], dict)]
    if not names:
        return None
    name = "gemm" if "gemm" in names else sorted(names)[0]
    figures = [(p["reference"] or {}).get(name) for p in points]
    values = [f.get("median") if isinstance(f, dict) else None for f in figures]
    unit = next((f.get("unit") for f in figures if isinstance(f, dict) and f.get("unit")), "")
    return {"name": REFERENCE_LABELS.get(name, name), "unit": unit, "values": values}


def _attribution(step: Any) -> dict[str, Any] | None:
    """The step's reference-workload attribution (machine/driver or software), when history made one."""
    attribution = getattr(step, "attribution", None)
    if attribution is None:
        return None
    text = getattr(attribution, "text", None)
    return {"verdict": str(getattr(attribution, "verdict", "") or ""), "text": str(text or attribution)}


def _event(event: Any) -> dict[str, Any]:
    """A version event (or a method change) of history's, with its kind for the chart."""
    changes = plain(getattr(event, "changes", {}) or {})
    label = getattr(event, "label", None) or ", ".join(f"{n} {a} -> {b}" for n, (a, b) in changes.items())
    return {"after": getattr(event, "after", 0), "label": label, "kind": event_kind(changes), "changes": changes}


def _levels(medians: list[float], afters: list[int]) -> list[float | None]:
    """Each segment's level between the steps (the median of its runs' medians), one per segment."""
    bounds = [0, *(after + 1 for after in sorted(afters)), len(medians)]
    return [median(medians[a:b]) if b > a else None for a, b in pairwise(bounds)]


def _step(step: Any, index: int, levels: list[float | None], points: list[dict[str, Any]]) -> dict[str, Any]:
    after = getattr(step, "after", 0)
    found = {
        "after": after,
        "where": points[after]["label"] if 0 <= after < len(points) else "",
        "change": getattr(step, "change", None),
        "z": getattr(step, "z", None),
        "verdict": getattr(step, "verdict", "") or "",
        "cause": getattr(step, "cause", None),
        "why": getattr(step, "why", "") or "",
        "shared_with": getattr(step, "shared_with", 0) or 0,
        "level_before": levels[index] if index < len(levels) else None,
        "level_after": levels[index + 1] if index + 1 < len(levels) else None,
        "runs_after": len(points) - after - 1,
        "reference": _attribution(step),
        "extra": extra(step, STEP_FIELDS),
    }
    return found


def timeline_document(timeline: Timeline) -> dict[str, Any]:
    """One timeline as the series page draws it: points, events, steps with the levels on either side."""
    points = [_point(point) for point in getattr(timeline, "points", [])]
    steps = list(getattr(timeline, "steps", []))
    levels = _levels([p["median"] or 0.0 for p in points], [getattr(s, "after", 0) for s in steps])
    key = plain(getattr(timeline, "key", {}) or {})
    drivers = sorted({str(p["versions"].get("driver_version")) for p in points if p["versions"].get("driver_version")})
    first, last = (points[0]["median"], points[-1]["median"]) if points else (None, None)
    change = ratio(last, first) if first and last else None
    events = [_event(event) for event in getattr(timeline, "events", [])] + reference_events(points)
    return {
        "id": getattr(timeline, "id", ""),
        "name": getattr(timeline, "name", ""),
        "key": key,
        "gpu": machine_of(key),
        "driver": drivers,
        "backend": str(key.get("backend") or ""),
        "shape": str(key.get("shape") or ""),
        "stage": str(key.get("stage") or ""),
        "run_to_run": getattr(timeline, "run_to_run", None),
        "first": first,
        "last": last,
        "change": None if change is None else change - 1,
        "points": points,
        "events": sorted(events, key=lambda event: event["after"]),
        "steps": [_step(step, index, levels, points) for index, step in enumerate(steps)],
        "levels": levels,
        "reference_series": reference_series(points),
        "throttled": _throttled(getattr(timeline, "throttled", None) or [], points),
        "extra": extra(timeline, TIMELINE_FIELDS),
    }


def _throttled(left_out: list[Any], points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs history left out of step detection (timed while the GPU throttled), each placed between the
    kept runs it fell between in time (``at``: a fractional run index, for the chart)."""
    found = []
    for point in left_out:
        shown = _point(point)
        before = sum(1 for kept in points if kept["when"] <= shown["when"])
        found.append({**shown, "at": before - 0.5})
    return found


def verdict_counts(document: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for step in document["steps"]:
        counts[step["verdict"]] = counts.get(step["verdict"], 0) + 1
    return counts


def filter_choices(documents: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Every value each index filter can take, sorted."""
    choices: dict[str, set[str]] = {name: set() for name in FILTERS}
    for document in documents:
        for name in FILTERS:
            value = document[name]
            choices[name].update(value if isinstance(value, list) else [value] if value else [])
    return {name: sorted(values) for name, values in choices.items()}
