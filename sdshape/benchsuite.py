"""Glue between pytest-benchmark and the session (used by bench/conftest.py and its tests).

pytest-benchmark times each round with its own wall-clock timer around
``StageRecorder.target``, which ends in a device synchronize, so the time is of
completed work; warm-up rounds go through pedantic's ``warmup_rounds``. The
device-side times (CUDA events) are kept beside them in ``extra_info``.

A stage that fails leaves no stats, and pytest-benchmark drops such benchmarks
from its JSON; the rows collected here are appended by the
``pytest_benchmark_update_json`` hook so failures stay in the file.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sdshape import parity
from sdshape.document import entry_for, extra_info
from sdshape.measure import Outcome
from sdshape.options import Plan
from sdshape.session import Reference, Session, compute_reference

PYTEST_TIMER = "pytest-benchmark time.perf_counter around a synchronized call"


class SessionPool:
    """One built session per backend, shared by all benchmarks of a pytest run.

    Eager fp32, when it is among the backends, is built first and becomes the
    parity reference stage by stage; otherwise the reference is computed once,
    before the first session is built.
    """

    def __init__(self, plan: Plan):
        self.plan = plan
        self.sessions: dict[str, Session] = {}
        self.failed_rows: list[dict[str, Any]] = []
        self.reference: Reference | None = None

    def ordered_backends(self) -> list[str]:
        return sorted(self.plan.backends, key=lambda label: self.plan.backend(label)[0] != "eager")

    def get(self, backend: str) -> Session:
        if backend not in self.sessions:
            is_reference = self.plan.backend(backend)[0] == "eager" and self.plan.precision == "fp32"
            if self.plan.parity and self.reference is None and not is_reference:
                self.reference = compute_reference(self.plan)
            session = Session(self.plan, backend, reference=self.reference)
            session.__enter__()
            session.build()
            if is_reference and self.plan.parity and session.build_error is None and self.reference is None:
                self.reference = Reference({}, session.stages["unet_loop"].conditioning)
            self.sessions[backend] = session
        return self.sessions[backend]

    def environment(self) -> dict[str, Any]:
        for session in self.sessions.values():
            if session.environment:
                return session.environment
        return {}

    def close(self) -> None:
        for session in self.sessions.values():
            session.__exit__(None, None, None)


def run_stage_benchmark(benchmark: Any, session: Session, stage: str, pool: SessionPool) -> None:
    """Benchmark one stage under pytest-benchmark's pedantic mode; failures become rows."""
    plan = session.plan
    benchmark.group = f"{stage} ({session.plan.precision}, {plan.resolution}px, {plan.steps} steps)"
    build_error = session.build_error
    recorder = session.recorder(stage) if build_error is None else None
    try:
        with torch.inference_mode():
            benchmark.pedantic(
                recorder.target if recorder else _raiser(build_error),
                setup=recorder.setup if recorder else None,
                teardown=recorder.teardown if recorder else None,
                rounds=plan.rounds,
                warmup_rounds=plan.warmup,
                iterations=1,
            )
    except Exception as error:
        if recorder is not None:
            outcome = recorder.failed(error)
        else:
            outcome = Outcome(stage, build_error.status, build_error.message, "none")
        _record_failure(benchmark, session, outcome, pool)
        return
    outcome = recorder.finish()
    session.outcomes[stage] = outcome
    session.check_parity(outcome)
    if session.is_reference and pool.reference is not None and outcome.output is not None:
        pool.reference.outputs[stage] = parity.flatten(outcome.output)
    outcome.output = None
    info = extra_info(session, outcome, benchmark.stats.stats.median)
    info["timer"] = PYTEST_TIMER
    info["device_timer"] = outcome.timer
    info["device_rounds_s"] = outcome.rounds_s
    benchmark.extra_info.update(info)
    if outcome.status == "invalid":
        pytest.fail(f"{stage} is invalid (kept as a result row): {outcome.message}", pytrace=False)


class BuildFailed(RuntimeError):
    """Raised inside pedantic when the components could not be built, so pytest-benchmark
    registers the benchmark (and its JSON gets written) even though nothing ran."""


def _raiser(build_error: Outcome):
    def target() -> None:
        raise BuildFailed(build_error.message)

    return target


def _record_failure(benchmark: Any, session: Session, outcome: Outcome, pool: SessionPool) -> None:
    session.outcomes[outcome.stage] = outcome
    info = extra_info(session, outcome, None)
    benchmark.extra_info.update(info)
    row = entry_for(info, None)
    row["name"], row["fullname"] = benchmark.name, benchmark.fullname
    pool.failed_rows.append(row)
    if outcome.status == "oom":
        pytest.xfail(f"{outcome.stage} ran out of memory (kept as a result row): {outcome.message}")
    pytest.fail(f"{outcome.stage} failed (kept as a result row): {outcome.message}", pytrace=False)
