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
from sdshape.plan import Plan
from sdshape.session import Campaign, Reference, Session, on_host

PYTEST_TIMER = "pytest-benchmark time.perf_counter around a synchronized call"


class SessionPool:
    """The campaign (``sdshape.session.Campaign``) as pytest drives it: one backend resident at a time.

    Benchmarks run backend by backend (``bench/conftest.py`` orders them so), each
    backend's four stages in pipeline order. The first benchmark of a backend closes
    the previous backend's session and opens its own, whose baseline is read once
    the previous memory is back down: the same lifetimes as ``sdshape run``. Eager
    fp32, when it is among the backends, comes first and becomes the parity
    reference stage by stage; otherwise the reference is computed once, up front.
    """

    def __init__(self, plan: Plan):
        self.plan = plan
        self.campaign = Campaign(plan)
        self.current: Session | None = None
        self.failed_rows: list[dict[str, Any]] = []
        self.environment: dict[str, Any] = {}
        self._reference_ready = False

    @property
    def reference(self) -> Reference | None:
        return self.campaign.reference

    def ordered_backends(self) -> list[str]:
        return self.campaign.labels

    def get(self, backend: str) -> Session:
        if self.current is not None and self.current.backend == backend:
            return self.current
        self.close()
        if self.plan.parity and not self._reference_ready:
            self._reference_ready = True
            if not self.campaign.reference_in_run:
                self.campaign.reference = self.campaign.compute_reference()
        session = self.campaign.open(backend, self.campaign.reference)
        session.build()
        if session.is_reference and self.plan.parity and session.build_error is None and self.reference is None:
            # Filled stage by stage as the reference's benchmarks run (pipeline order).
            self.campaign.reference = Reference({}, on_host(session.stages["unet_loop"].conditioning))
        self.environment = self.environment or session.environment
        self.current = session
        return session

    def close(self) -> None:
        if self.current is not None:
            self.campaign.close(self.current)
            self.current = None


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
    session.measure_energy(recorder, outcome)
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
