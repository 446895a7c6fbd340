"""Measuring one stage, round by round.

:class:`StageRecorder` exposes ``setup`` / ``target`` / ``teardown``, exactly the
hooks of pytest-benchmark's pedantic mode, so ``sdshape run`` and ``pytest
bench/`` drive the very same code. Warm-up rounds run first and are excluded;
the measurement window (allocator peaks, sampler peaks, the energy counter)
opens at the first timed round. ``target`` ends with a synchronize, so a
wall-clock timer around it (pytest-benchmark's) sees the completed work, while
the clock's marks give device-side round and per-step times.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from sdshape.measurement import energy
from sdshape.measurement.energy import EnergyReading
from sdshape.measurement.sampling import BackgroundSampler, WindowStats
from sdshape.measurement.stopping import Stopping
from sdshape.result.records import Kernels, StoppingRecord


class Stage(Protocol):
    name: str

    def run(self, mark: Any = None) -> Any: ...


@dataclass
class Outcome:
    """Everything measured about one stage, or why it failed."""

    stage: str
    status: str  # ok | oom | error
    message: str | None
    timer: str
    rounds_s: list[float] = field(default_factory=list)
    step_s: list[list[float]] = field(default_factory=list)
    window: WindowStats | None = None
    torch_memory: dict[str, int] | None = None
    stopping: StoppingRecord | None = None  # how the timed rounds ended (``sdshape.measurement.stopping``)
    output: Any = field(default=None, repr=False)  # the last timed round's output, for parity; never saved


def classify_failure(error: BaseException) -> tuple[str, str]:
    """('oom' | 'error', one-line message)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    oom = isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)) or "out of memory" in text.lower()
    oom = oom or "can't allocate memory" in text.lower()
    return ("oom" if oom else "error"), f"{type(error).__name__}: {text}"[:500]


def release_cached_memory(device: torch.device) -> None:
    """Return freed memory to the OS / driver: torch's CUDA cache, or glibc's heap on Linux.

    Without it a stage reuses memory cached by the previous one, and NVML or RSS
    would show no growth for it. Called before a stage's first round only.
    """
    if device.type == "cuda":
        torch.cuda.empty_cache()
        return
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def release_memory(device: torch.device) -> None:
    """Everything a finished session may still hold, handed back: unreachable objects collected
    (diffusers models sit in reference cycles, which refcounting alone never frees), queued GPU work
    finished, torch's CUDA cache and glibc's heap returned. Called between sessions, with no
    reference to the previous session left in any frame."""
    gc.collect()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    release_cached_memory(device)
    if device.type == "cuda":
        release_cached_memory(torch.device("cpu"))  # the host side of a GPU run (pinned staging, ORT)


class StageRecorder:
    def __init__(
        self, stage: Stage, device: torch.device, sampler: BackgroundSampler, warmup: int, per_step: bool = False
    ):
        self.stage = stage
        self.device = device
        self.sampler = sampler
        self.warmup = warmup
        self.per_step = per_step
        self.clock = Clock(device)
        self._round = 0
        self._window: tuple | None = None
        self._allocated_before = 0
        self._reference: dict | None = None
        self.rounds_s: list[float] = []
        self.step_s: list[list[float]] = []
        self.last_output: Any = None
        self._closed: WindowStats | None = None

    # -- the three pedantic hooks ------------------------------------------------------
    def setup(self) -> None:
        synchronize(self.device)
        if self._round == 0:
            # Hand cached memory back first, so the stage's own growth shows (warm-up included).
            release_cached_memory(self.device)
            self._reference = self.sampler.read_now()
        if self._round == self.warmup and self._window is None:
            self._open_window()
        self.clock.reset()
        self.clock.mark()

    def target(self) -> None:
        self.last_output = self.stage.run(self.clock.mark if self.per_step else None)
        self.clock.mark()
        synchronize(self.device)

    def teardown(self) -> None:
        intervals = self.clock.intervals_s()
        if self._round >= self.warmup:
            # The last interval is the end mark; for the loop it follows the last step's mark.
            steps = intervals[:-1] if self.per_step else []
            self.rounds_s.append(sum(intervals))
            if self.per_step:
                if steps:  # the tail between the last step's mark and the end mark
                    steps[-1] += intervals[-1]
                self.step_s.append(steps)
        self._round += 1

    # -- window -----------------------------------------------------------------------
    def _open_window(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._allocated_before = torch.cuda.memory_allocated(self.device)
        self._window = self.sampler.open_window(reference=self._reference)

    def _torch_memory(self) -> dict[str, int] | None:
        if self.device.type != "cuda":
            return None
        allocated_peak = torch.cuda.max_memory_allocated(self.device)
        return {
            "torch_allocated_peak_bytes": allocated_peak,
            "torch_reserved_peak_bytes": torch.cuda.max_memory_reserved(self.device),
            # Still held at the window's close, where the sampler reads too: NVML must see at least this.
            "torch_reserved_end_bytes": torch.cuda.memory_reserved(self.device),
            # Peak over what was resident when the window opened (weights, inputs): activations.
            "torch_activation_peak_bytes": allocated_peak - self._allocated_before,
        }

    def run_all(self, rounds: int | Stopping, on_round: Callable[[], None] | None = None) -> Outcome:
        """Warm-up, then timed rounds until the stopping rule says so (``sdshape run``; a count: that many)."""
        stopping = rounds if isinstance(rounds, Stopping) else Stopping(fixed=rounds)
        criterion = None
        try:
            for _ in range(self.warmup):
                self.setup()
                self.target()
                self.teardown()
            started = time.perf_counter()
            while criterion is None:
                self.setup()
                self.target()
                self.teardown()
                if on_round is not None:
                    on_round()
                criterion = stopping.done(self.rounds_s, time.perf_counter() - started)
        except Exception as error:
            return self.failed(error)
        outcome = self.finish()
        outcome.stopping = stopping.record(criterion, self.rounds_s)
        return outcome

    def profiled(self) -> Kernels:
        """One profiled round, outside the timed ones: GPU busy fraction and time by kernel class."""
        from sdshape.measurement.profiling import profile_round

        median = sorted(self.rounds_s)[len(self.rounds_s) // 2] if self.rounds_s else None
        try:
            with torch.inference_mode():
                return Kernels.from_json(profile_round(lambda: self.stage.run(None), self.device, median))
        except Exception as error:  # a profiler failure must not cost the measured row
            return Kernels(busy_note=f"profiling failed: {classify_failure(error)[1]}")

    def energy_window(self, counter_period_s: float | None) -> EnergyReading:
        """Joules per call over a window the energy counter can resolve (``sdshape.measurement.energy``).

        The timed rounds are used when they already span the window; otherwise the
        stage runs back to back, outside the timed rounds, until it does.
        """
        needed = energy.window_needed(counter_period_s)
        timed = self._closed
        if timed is not None and timed.duration_s >= needed and self.rounds_s:
            reading = energy.from_counter(timed.energy_j, len(self.rounds_s), timed.duration_s, counter_period_s)
            if reading is not None:
                reading.note = reading.note or f"over the {len(self.rounds_s)} timed rounds"
                return reading
            if len(timed.power_samples) >= 10:
                return energy.from_power(timed.power_samples, len(self.rounds_s), timed.duration_s)
        median = sorted(self.rounds_s)[len(self.rounds_s) // 2] if self.rounds_s else 0.0
        batch, calls = energy.calls_for(needed * 1.1, median), 0
        try:
            synchronize(self.device)
            opened = self.sampler.open_window()
            start = time.perf_counter()
            while True:
                for _ in range(batch):
                    self.stage.run(None)
                calls += batch
                synchronize(self.device)
                window_s = time.perf_counter() - start
                if window_s >= needed or calls >= energy.MAX_CALLS:
                    break
                # The rounds' median overstated a call (a host busy during the rounds, clocks that rose
                # since): extend the window at the rate just seen rather than return a window too short.
                batch = min(energy.MAX_CALLS - calls, energy.calls_for(needed * 1.1 - window_s, window_s / calls))
            closed = self.sampler.close_window(opened)
        except Exception as error:
            return EnergyReading(None, None, calls, note=f"energy window failed: {classify_failure(error)[1]}")
        reading = energy.from_counter(closed.energy_j, calls, window_s, counter_period_s)
        if reading is None:
            reading = energy.from_power(closed.power_samples, calls, window_s)
        return reading

    def finish(self) -> Outcome:
        window = self.sampler.close_window(self._window) if self._window else None
        self._closed = window
        return Outcome(
            stage=self.stage.name,
            status="ok",
            message=None,
            timer=self.clock.timer_name,
            rounds_s=self.rounds_s,
            step_s=self.step_s,
            window=window,
            torch_memory=self._torch_memory(),
            output=self.last_output,
        )

    def failed(self, error: BaseException) -> Outcome:
        status, message = classify_failure(error)
        window = self.sampler.close_window(self._window) if self._window else None
        memory = self._torch_memory()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        return Outcome(self.stage.name, status, message, self.clock.timer_name, window=window, torch_memory=memory)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """Marks on one device; intervals between consecutive marks in seconds."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        self._marks: list = []

    @property
    def timer_name(self) -> str:
        return "cuda_event" if self.cuda else "perf_counter"

    def reset(self) -> None:
        self._marks = []

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))
            self._marks.append(event)
        else:
            self._marks.append(time.perf_counter_ns())

    def intervals_s(self) -> list[float]:
        """Seconds between consecutive marks; call after :func:`synchronize`."""
        if self.cuda:
            return [a.elapsed_time(b) / 1e3 for a, b in zip(self._marks, self._marks[1:], strict=False)]
        return [(b - a) / 1e9 for a, b in zip(self._marks, self._marks[1:], strict=False)]
