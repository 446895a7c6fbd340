"""Background sampling of memory, power and clocks.

A :class:`BackgroundSampler` polls a :class:`ReadingSource` on its own thread, starting
before any model is loaded: its first reading is the baseline that is
subtracted from memory peaks, so a peak is what this run added (weights,
activations, CUDA context, cuDNN and other library workspaces). Windows bracket
a stage's timed rounds; each window also takes a synchronous reading at its
open and close, so even a stage shorter than the interval gets two readings.

NVML memory readings see what torch's allocator cannot (ONNX Runtime, TensorRT,
cuDNN workspaces, the context itself); host RSS stands in for VRAM on the CPU.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from sdshape.measurement import clocks

# Keys of a reading. Memory keys are peaks over the window minus the baseline.
MEMORY_KEYS = ("nvml_process_bytes", "nvml_device_bytes", "host_rss_bytes")
# The file-backed (and shared-memory) part of host RSS: read beside it, so that pages the kernel evicts
# are not mistaken for memory the process gave back (see ``_growth``).
HOST_FILE_KEY = "host_file_bytes"


class ReadingSource(Protocol):
    """Anything that can be polled for a reading; NVML, psutil, or a script in tests."""

    def read(self) -> dict[str, float | int | None]: ...

    def energy_mj(self) -> float | None: ...


@dataclass
class WindowStats:
    """What a sampler saw between a window's open and close."""

    duration_s: float
    samples: int
    peaks: dict[str, int | None]
    baseline: dict[str, int | None]
    # Peak over the reading at the window's opening (weights already resident): the stage's own growth.
    rises: dict[str, int | None]
    energy_j: float | None
    power_w_mean: float | None
    sm_clock_mhz: dict[str, float] | None
    # Clock-event reasons seen in the window (``sdshape.measurement.clocks``): the throttling ones, the others.
    slowdown_reasons: list[str] = field(default_factory=list)
    other_reasons: list[str] = field(default_factory=list)
    reason_readings: int = 0  # readings that had the reasons (0: NVML did not report them)
    mem_clock_mhz: dict[str, float] | None = None
    clock_readings: int = 0  # readings that had the SM clock
    # (time, watts) of every power reading in the window: integrated when there is no energy counter.
    power_samples: list[tuple[float, float]] = field(default_factory=list, repr=False)

    @property
    def throttled(self) -> bool:
        return bool(self.slowdown_reasons)


class BackgroundSampler:
    """Polls ``source`` every ``interval_s`` on a daemon thread."""

    def __init__(self, source: ReadingSource, interval_s: float = 0.02):
        self.source = source
        self.interval_s = interval_s
        self._samples: list[tuple[float, dict]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.baseline: dict[str, float | int | None] = {}

    def __enter__(self) -> BackgroundSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, baseline: dict | None = None) -> None:
        """Take the baseline reading now (or use ``baseline``, a reading just taken), then keep sampling
        in the background (interval 0: no thread; windows still take their opening and closing readings)."""
        self.baseline = baseline if baseline is not None else self.read_now()
        if self.interval_s > 0:
            self._thread = threading.Thread(target=self._run, name="sdshape-sampler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.read_now()

    def read_now(self) -> dict[str, float | int | None]:
        reading = self.source.read()
        with self._lock:
            self._samples.append((time.perf_counter(), reading))
        return reading

    @property
    def sample_count(self) -> int:
        with self._lock:
            return len(self._samples)

    def open_window(self, reference: dict | None = None) -> tuple[float, float | None, dict]:
        """Start of a measurement window: a reading, the time and the energy counter.

        ``reference`` is the level that rises are measured from (by default this
        opening reading); the recorder passes the reading taken before warm-up.
        """
        opening = self.read_now()
        return time.perf_counter(), self.source.energy_mj(), reference if reference is not None else opening

    def close_window(self, opened: tuple[float, float | None, dict]) -> WindowStats:
        start, energy_start, opening = opened
        energy_end = self.source.energy_mj()
        self.read_now()
        end = time.perf_counter()
        with self._lock:
            timed = [(t, reading) for t, reading in self._samples if start <= t <= end]
            # Include the last reading before the window, which still describes its start.
            before = [(t, reading) for t, reading in self._samples if t < start][-1:]
        stats = summarize(
            [reading for _, reading in before + timed], self.baseline, start, end, energy_start, energy_end, opening
        )
        stats.power_samples = [(t, r["power_w"]) for t, r in timed if r.get("power_w") is not None]
        return stats


def _peak(values: list) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _growth(reading: dict, level: dict, key: str) -> float | None:
    """How much of memory ``key`` ``reading`` holds over ``level`` (the baseline, or a window's opening).

    Host RSS counts file-backed pages (shared libraries, memory-mapped weights) beside the process's own
    anonymous memory. The kernel may evict file pages at any time when another process needs the memory
    (ONNX Runtime's optimizer child takes 16 GiB for SD 1.5's UNet on a 24 GiB machine): RSS then falls
    without the process releasing anything, and a growth over a baseline taken before reads too small.
    So file-backed pages count only where they grew (memory-mapped weights paged in); where they shrank,
    the anonymous part alone is compared.
    """
    value, base = reading.get(key), level.get(key)
    if value is None:
        return None
    if base is None:
        return value
    if key == "host_rss_bytes" and reading.get(HOST_FILE_KEY) is not None and level.get(HOST_FILE_KEY) is not None:
        file_growth = reading[HOST_FILE_KEY] - level[HOST_FILE_KEY]
        return (value - base) - min(0, file_growth)
    return value - base


def summarize(
    readings: list[dict],
    baseline: dict,
    start: float,
    end: float,
    energy_start_mj: float | None,
    energy_end_mj: float | None,
    opening: dict | None = None,
) -> WindowStats:
    """Peaks over the baseline and over the opening reading, energy delta, power, clocks, slowdowns."""
    peaks: dict[str, int | None] = {}
    rises: dict[str, int | None] = {}
    for key in MEMORY_KEYS:
        peak = _peak([_growth(r, baseline, key) for r in readings])
        peaks[key] = None if peak is None else int(peak)
        rise = _peak([_growth(r, opening, key) for r in readings]) if (opening or {}).get(key) is not None else None
        rises[key] = None if rise is None else int(rise)
    powers = [r["power_w"] for r in readings if r.get("power_w") is not None]
    reasons = clocks.union(r.get("clock_event_reasons") for r in readings)
    energy = None
    if energy_start_mj is not None and energy_end_mj is not None:
        energy = (energy_end_mj - energy_start_mj) / 1e3
    return WindowStats(
        duration_s=end - start,
        samples=len(readings),
        peaks=peaks,
        baseline={key: baseline.get(key) for key in MEMORY_KEYS},
        rises=rises,
        energy_j=energy,
        power_w_mean=statistics.fmean(powers) if powers else None,
        sm_clock_mhz=clocks.spread(r.get("sm_clock_mhz") for r in readings),
        slowdown_reasons=clocks.throttling(reasons or 0),
        other_reasons=clocks.other(reasons or 0),
        reason_readings=sum(r.get("clock_event_reasons") is not None for r in readings),
        mem_clock_mhz=clocks.spread(r.get("mem_clock_mhz") for r in readings),
        clock_readings=sum(r.get("sm_clock_mhz") is not None for r in readings),
    )


class HostSource:
    """Resident set size of this process (stands in for VRAM on the CPU), and its file-backed part.

    psutil's ``shared`` is the kernel's file-backed plus shared-memory resident pages (``/proc/PID/statm``
    on Linux); where psutil has no such field, only RSS is read and growth is plain RSS growth.
    """

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()

    def read(self) -> dict[str, float | int | None]:
        info = self._process.memory_info()
        return {"host_rss_bytes": info.rss, HOST_FILE_KEY: getattr(info, "shared", None)}

    def energy_mj(self) -> float | None:
        return None


class CombinedSource:
    """Merges readings of several sources; energy comes from the first that has it."""

    def __init__(self, *sources: ReadingSource):
        self.sources = sources

    def read(self) -> dict[str, float | int | None]:
        merged: dict[str, float | int | None] = {}
        for source in self.sources:
            merged.update(source.read())
        return merged

    def energy_mj(self) -> float | None:
        for source in self.sources:
            value = source.energy_mj()
            if value is not None:
                return value
        return None
