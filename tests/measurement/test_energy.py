"""Energy per call over a window the counter resolves: the H100's 0.00 J text encoder, reproduced on the CPU.

NVML's energy counter steps every few tens of milliseconds. A 5 ms call read
between two counter values is 0 J (or one whole step): the H100 run printed
0.00 J for a text encoder drawing 126 W. A scripted counter that steps the same
way shows the window method getting the right figure.
"""

from __future__ import annotations

import math
import time

import pytest
import torch

from sdshape.measurement import energy
from sdshape.measurement.measure import StageRecorder
from sdshape.measurement.sampling import BackgroundSampler


class SteppingCounter:
    """An energy counter at a constant ``watts`` that only updates every ``period_s``, as NVML's does."""

    def __init__(self, watts: float = 126.0, period_s: float = 0.1, power: bool = True, counter: bool = True):
        self.watts, self.period_s, self.power, self.counter = watts, period_s, power, counter
        self.start = time.perf_counter()

    def energy_mj(self) -> float | None:
        if not self.counter:
            return None
        steps = math.floor((time.perf_counter() - self.start) / self.period_s)
        return steps * self.period_s * self.watts * 1e3

    def read(self) -> dict:
        return {"host_rss_bytes": 1, "power_w": self.watts if self.power else None}


class ShortStage:
    """A 5 ms call, like SD 1.5's text encoder on the H100."""

    name = "text_encoder"

    def __init__(self):
        self.calls = 0

    def run(self, mark=None):
        self.calls += 1
        time.sleep(0.005)


def _recorded(source, interval_s: float = 0.0):
    sampler = BackgroundSampler(source, interval_s=interval_s)
    sampler.start()
    stage = ShortStage()
    recorder = StageRecorder(stage, torch.device("cpu"), sampler, warmup=1)
    outcome = recorder.run_all(rounds=5)
    return recorder, outcome, sampler, stage


def test_the_counter_period_is_detected():
    assert energy.counter_period(SteppingCounter(period_s=0.02).energy_mj) == pytest.approx(0.02, rel=0.3)
    assert energy.counter_period(lambda: None) is None
    assert energy.counter_period(lambda: 5.0, probe_s=0.05) is None  # a counter that never moves


def test_a_short_stage_gets_its_energy_from_a_window_of_many_calls():
    source = SteppingCounter(watts=126.0, period_s=0.1)
    recorder, outcome, sampler, stage = _recorded(source)
    # Read around the five timed rounds alone, the counter gives 0 J or one whole step: both wrong.
    assert outcome.window.energy_j in (0.0, pytest.approx(12.6))
    reading = recorder.energy_window(counter_period_s=0.1)
    sampler.stop()
    assert reading.method == "counter_window" and reading.joules_per_call is not None
    # the window spans the second the counter needs, however long a call took on this machine today
    assert reading.window_s >= 1.0 and reading.calls == stage.calls - 6  # one warm-up and five rounds before
    expected = 126.0 * reading.window_s / reading.calls  # about 0.63 J a 5 ms call
    assert reading.joules_per_call == pytest.approx(expected, rel=0.15)


def test_a_window_planned_from_slow_rounds_is_extended_until_it_spans_what_the_counter_needs():
    """Rounds timed while the host was busy overstate a call: the planned calls then fill a fraction of the
    window. The window grows at the rate it sees instead of coming back too short to read."""

    class FasterLater(ShortStage):
        def run(self, mark=None):
            self.calls += 1
            time.sleep(0.02 if self.calls <= 6 else 0.002)  # the warm-up and rounds 10 times slower

    sampler = BackgroundSampler(SteppingCounter(watts=126.0, period_s=0.1), interval_s=0.0)
    sampler.start()
    stage = FasterLater()
    recorder = StageRecorder(stage, torch.device("cpu"), sampler, warmup=1)
    recorder.run_all(rounds=5)
    reading = recorder.energy_window(counter_period_s=0.1)
    sampler.stop()
    planned = energy.calls_for(1.1, 0.02)  # what the rounds' median alone asks for: about 0.1 s of calls
    assert reading.method == "counter_window" and reading.window_s >= 1.0
    assert reading.calls > planned and reading.calls == stage.calls - 6


def test_long_timed_rounds_are_their_own_window():
    sampler = BackgroundSampler(SteppingCounter(period_s=0.01), interval_s=0.0)
    sampler.start()

    class LongStage(ShortStage):
        def run(self, mark=None):
            self.calls += 1
            time.sleep(0.25)

    stage = LongStage()
    recorder = StageRecorder(stage, torch.device("cpu"), sampler, warmup=0)
    recorder.run_all(rounds=5)
    reading = recorder.energy_window(counter_period_s=0.01)
    sampler.stop()
    assert stage.calls == 5  # no extra calls: the rounds spanned more than a second
    assert reading.calls == 5 and "timed rounds" in reading.note
    assert reading.joules_per_call == pytest.approx(126.0 * 0.25, rel=0.15)


def test_a_counter_that_does_not_advance_is_null_with_the_reason_never_zero():
    source = SteppingCounter(period_s=1e9)  # never steps within the test
    recorder, _, sampler, _ = _recorded(source)
    reading = recorder.energy_window(counter_period_s=None)
    sampler.stop()
    assert reading.joules_per_call is None and reading.method is None
    assert "did not advance" in reading.note


def test_without_a_counter_power_readings_are_integrated_and_labelled():
    source = SteppingCounter(watts=80.0, counter=False)
    recorder, _, sampler, _ = _recorded(source, interval_s=0.01)
    reading = recorder.energy_window(counter_period_s=None)
    sampler.stop()
    assert reading.method == "power_integrated" and "power readings" in reading.note
    assert reading.joules_per_call == pytest.approx(80.0 * reading.window_s / reading.calls, rel=0.15)


def test_window_arithmetic():
    assert energy.window_needed(None) == 1.0 and energy.window_needed(0.5) == 2.5
    assert energy.calls_for(1.0, 0.005) == 200 and energy.calls_for(1.0, 0.0) == 1
    assert energy.calls_for(1.0, 1e-9) == energy.MAX_CALLS
    short = energy.from_counter(3.0, 10, 0.2, 0.1)
    assert short.joules_per_call is None and "shorter than" in short.note
    assert energy.from_counter(None, 10, 2.0, 0.1) is None
    assert energy.from_power([(0.0, 100.0)], 1, 1.0).joules_per_call is None
