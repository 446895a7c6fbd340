"""Energy per call over a window long enough for NVML's counter to resolve it.

NVML's total-energy counter (millijoules) is updated by the driver every few
tens of milliseconds, not continuously. A 5 ms text-encoder call read as the
counter's difference around it comes out as 0 J, or as one whole update step:
both are wrong. So energy is measured over a *window*: the stage runs back to
back until the window spans at least ``MIN_WINDOW_S`` and ``MIN_UPDATES`` of
the counter's updates, and the joules are divided by the calls. When the timed
rounds already span such a window, they are used as they are.

Without the counter (pre-Volta GPUs) the sampler's power readings are
integrated over the window instead, and labelled so. When neither can resolve
the window the figure is ``None`` with the reason: never 0.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MIN_WINDOW_S = 1.0
MIN_UPDATES = 5  # the window spans at least this many counter updates
MAX_CALLS = 100_000
PROBE_S = 1.0  # longest wait for the counter to show its update period


@dataclass
class EnergyReading:
    """Joules per call and how they were measured (``method`` says which estimator, ``note`` why not)."""

    joules_per_call: float | None
    method: str | None  # "counter_window" | "power_integrated" | None
    calls: int = 0
    window_s: float | None = None
    counter_period_s: float | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "calls": self.calls,
            "window_s": self.window_s,
            "counter_period_s": self.counter_period_s,
            "note": self.note,
        }


def counter_period(read_mj: Callable[[], float | None], probe_s: float = PROBE_S) -> float | None:
    """The counter's update period: the median time between value changes over a short probe.

    Returns None when the counter is missing or did not change often enough to tell.
    """
    first = read_mj()
    if first is None:
        return None
    changes: list[float] = []
    last, start = first, time.perf_counter()
    while time.perf_counter() - start < probe_s and len(changes) < 6:
        value = read_mj()
        if value is not None and value != last:
            changes.append(time.perf_counter())
            last = value
        time.sleep(0.0005)
    if len(changes) < 3:
        return None
    return statistics.median(b - a for a, b in itertools.pairwise(changes))


def window_needed(counter_period_s: float | None) -> float:
    """Seconds a window must span: at least one second and ``MIN_UPDATES`` counter updates."""
    return max(MIN_WINDOW_S, MIN_UPDATES * (counter_period_s or 0.0))


def calls_for(window_s: float, seconds_per_call: float) -> int:
    """Back-to-back calls that fill ``window_s`` (at least one, at most ``MAX_CALLS``)."""
    if not seconds_per_call or seconds_per_call <= 0 or not math.isfinite(seconds_per_call):
        return 1
    return max(1, min(MAX_CALLS, math.ceil(window_s / seconds_per_call)))


def from_counter(delta_j: float | None, calls: int, window_s: float, period_s: float | None) -> EnergyReading | None:
    """Joules per call from the counter's difference over the window; None when there is no counter."""
    if delta_j is None:
        return None
    needed = window_needed(period_s)
    if window_s < needed:
        return EnergyReading(
            None,
            None,
            calls,
            window_s,
            period_s,
            f"window of {window_s:.3f} s is shorter than the {needed:.2f} s the energy counter needs",
        )
    if delta_j <= 0:
        note = f"energy counter did not advance over {window_s:.2f} s ({calls} calls)"
        return EnergyReading(None, None, calls, window_s, period_s, note)
    return EnergyReading(delta_j / calls, "counter_window", calls, window_s, period_s)


def from_power(samples: list[tuple[float, float]], calls: int, window_s: float) -> EnergyReading:
    """Joules per call from (time, watts) samples integrated with the trapezoid rule over the window."""
    if len(samples) < 2:
        return EnergyReading(None, None, calls, window_s, None, "fewer than two power readings in the window")
    ordered = sorted(samples)
    joules = sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in itertools.pairwise(ordered))
    covered = ordered[-1][0] - ordered[0][0]
    if joules <= 0 or covered <= 0:
        return EnergyReading(None, None, calls, window_s, None, "power readings did not resolve the window")
    # Scale to the whole window when the samples cover only part of it.
    joules *= window_s / covered
    note = f"integrated from {len(ordered)} power readings (no energy counter)"
    return EnergyReading(joules / calls, "power_integrated", calls, window_s, None, note)
