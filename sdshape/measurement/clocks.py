"""NVML's clock-event (throttle) reasons, sorted into what slowed the timed work down and what did not.

NVML reports, as a bit mask, why the GPU's clocks are below their maximum at the instant it is asked
(``nvmlDeviceGetCurrentClocksEventReasons``; ``nvmlDeviceGetCurrentClocksThrottleReasons`` before CUDA 12,
the same bits). The sampler reads it with every reading; a window keeps the union of the readings
inside it. Only some reasons mean that the rounds ran slower than the same GPU runs them when it is cool
and within its power limit, so only those mark a row (``Throttle.throttled``):

- **throttling**: the software power cap (``sw_power_cap``), the thermal slowdowns (``sw_thermal_slowdown``,
  ``hw_thermal_slowdown``) and the hardware slowdowns (``hw_slowdown``, ``hw_power_brake_slowdown``: clocks
  cut by half or more). They come and go with temperature and power draw, so two runs of the same code
  differ by them: a marked row's time is the machine's state, not the code's.
- **other**: ``applications_clocks_setting`` (NVML: clocks set to application-specific values; a user's),
  ``sync_boost`` (an administrator's group of GPUs held to one clock), ``display_clock_setting``, and the
  ``board_limit`` and ``reliability`` limits, which NVML documents in one word each and which no sdshape
  run has met yet. Settings hold alike on every run of the machine; they are recorded, not marked.
- ``gpu_idle``: nothing ran at that instant (the reading just before the first round). It says nothing
  about the timed work, and is dropped.

A bit this table does not know (a newer driver's) is recorded under ``other`` as ``unknown_0x...``. The
names are NVIDIA's own lower-case ones (cuda.core's ``ClocksEventReasons``), and files written before
this module used them already.

Polling can miss a slowdown shorter than the sampling interval (``--sample-interval``): a row marked
throttled was throttled; an unmarked row was not throttled at any of its readings.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

# nvml.h's nvmlClocksEventReason* bits (the same values as the deprecated nvmlClocksThrottleReason*).
GPU_IDLE = 0x1
THROTTLING = {
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
}
OTHER = {
    0x2: "applications_clocks_setting",
    0x10: "sync_boost",
    0x100: "display_clock_setting",
    0x200: "board_limit",
    0x400: "reliability",
}
KNOWN = GPU_IDLE | sum(THROTTLING) | sum(OTHER)


def union(masks: Iterable[int | None]) -> int | None:
    """Every reason set in any reading; None when no reading had the reasons at all (no NVML, or a driver
    that does not report them)."""
    read = [int(mask) for mask in masks if mask is not None]
    if not read:
        return None
    combined = 0
    for mask in read:
        combined |= mask
    return combined


def throttling(mask: int) -> list[str]:
    """The reasons in ``mask`` that slowed the work down, by name."""
    return [name for bit, name in THROTTLING.items() if mask & bit]


def other(mask: int) -> list[str]:
    """The reasons in ``mask`` that are settings or limits not counted as throttling (idle left out), and
    every bit this table does not know as ``unknown_0x...``."""
    named = [name for bit, name in OTHER.items() if mask & bit]
    unknown = mask & ~KNOWN
    bits = [1 << position for position in range(unknown.bit_length()) if unknown >> position & 1]
    return named + [f"unknown_{bit:#x}" for bit in bits]


def spread(values: Iterable[float | int | None]) -> dict[str, float] | None:
    """min, median and max of the readings that have a value (None: none has)."""
    present = [value for value in values if value is not None]
    if not present:
        return None
    return {"min": min(present), "median": statistics.median(present), "max": max(present)}
