"""Round recording: warm-up excluded, per-step marks, failures as rows."""

from __future__ import annotations

import time

import torch

from sdshape.measurement.measure import StageRecorder, classify_failure
from sdshape.measurement.sampling import BackgroundSampler, HostSource


class SleepyStage:
    name = "denoise_loop"

    def __init__(self, steps: int = 3, fail_on_round: int | None = None, error: BaseException | None = None):
        self.steps, self.fail_on_round, self.error, self.calls = steps, fail_on_round, error, 0

    def run(self, mark=None):
        self.calls += 1
        if self.fail_on_round is not None and self.calls > self.fail_on_round:
            raise self.error
        for step in range(self.steps):
            time.sleep(0.01 * (step + 1))
            if mark:
                mark()


def _recorder(stage, warmup=2):
    sampler = BackgroundSampler(HostSource(), interval_s=1.0)
    sampler.start()
    return StageRecorder(stage, torch.device("cpu"), sampler, warmup=warmup, per_step=True), sampler


def test_warmup_rounds_are_excluded_and_steps_are_timed():
    stage = SleepyStage()
    recorder, sampler = _recorder(stage, warmup=2)
    outcome = recorder.run_all(rounds=3)
    sampler.stop()
    assert stage.calls == 5
    assert outcome.status == "ok"
    assert len(outcome.rounds_s) == 3
    assert all(len(steps) == 3 for steps in outcome.step_s)
    for steps, total in zip(outcome.step_s, outcome.rounds_s, strict=True):
        assert abs(sum(steps) - total) < 1e-9
        assert steps[0] < steps[2]  # 10 ms then 30 ms
    assert outcome.window is not None and outcome.window.samples >= 2
    assert outcome.timer == "perf_counter"


def test_out_of_memory_becomes_an_oom_row():
    stage = SleepyStage(fail_on_round=2, error=torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    recorder, sampler = _recorder(stage, warmup=1)
    outcome = recorder.run_all(rounds=3)
    sampler.stop()
    assert outcome.status == "oom"
    assert "out of memory" in outcome.message
    assert outcome.rounds_s == []


def test_other_failures_become_error_rows():
    assert classify_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied\nmore"))[0] == "error"
    status, message = classify_failure(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried"))
    assert status == "oom" and "\n" not in message
    assert classify_failure(MemoryError())[0] == "oom"
