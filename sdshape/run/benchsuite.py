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

import dataclasses
from typing import Any

import pytest
import torch
from pytest_benchmark.fixture import BenchmarkFixture

from sdshape.config.plan import Plan
from sdshape.core.statistics import relative_ci
from sdshape.measurement.measure import Outcome
from sdshape.result.document import to_benchmark
from sdshape.result.model import StageResult
from sdshape.run.campaign import Campaign
from sdshape.run.recording import result_of
from sdshape.run.reference import Reference
from sdshape.run.session import Session

PYTEST_TIMER = "pytest-benchmark time.perf_counter around a synchronized call"


class SessionPool:
    """The campaign (``sdshape.run.campaign.Campaign``) as pytest drives it: one backend resident at a time.

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
        if self.plan.options.parity and not self._reference_ready:
            self._reference_ready = True
            if not self.campaign.reference_in_run:
                self.campaign.reference = self.campaign.compute_reference()
        session = self.campaign.open(backend, self.campaign.reference)
        session.build()
        self.environment = self.environment or session.environment
        self.current = session
        return session

    def close(self) -> None:
        """Close the resident session; an eager fp32 one becomes the reference for the backends after it."""
        if self.current is not None:
            if self.campaign.reference is None and self.plan.options.parity:
                self.campaign.reference = self.current.as_reference()
            self.campaign.close(self.current)
            self.current = None

    def stamp_reference_workload(self, entries: list[dict[str, Any]]) -> None:
        """At the end of the suite (pytest-benchmark's JSON hook): the last session closed, the reference
        workload measured once, as ``sdshape run`` does, and put in every benchmark's ``extra_info``."""
        self.close()
        reference = self.campaign.measure_reference_workload()
        if reference is not None:
            for entry in entries:
                if isinstance(entry.get("extra_info"), dict):
                    entry["extra_info"]["reference"] = reference.to_json()


def run_stage_benchmark(benchmark: BenchmarkFixture, session: Session, stage: str, pool: SessionPool) -> None:
    """Benchmark one stage under pytest-benchmark's pedantic mode; failures become rows."""
    plan = session.plan
    benchmark.group = (
        f"{stage} ({session.plan.options.precision}, {plan.options.resolution}px, {plan.options.steps} steps)"
    )
    build_error = session.build_error
    recorder = session.recorder(stage) if build_error is None else None
    rounds, warmup, pilot = plan.rounds, plan.options.warmup, None
    if rounds is None and recorder is not None:
        # --rounds auto: pedantic needs a count up front, so an untimed pilot (our own loop) finds it
        # with the stopping rule; pytest-benchmark then times that many rounds, already warm.
        with torch.inference_mode():
            pilot = session.recorder(stage).run_all(plan.stopping)
        rounds, warmup = max(len(pilot.rounds_s), 1), 0
    try:
        with torch.inference_mode():
            benchmark.pedantic(
                recorder.target if recorder else _raiser(build_error),
                setup=recorder.setup if recorder else None,
                teardown=recorder.teardown if recorder else None,
                rounds=rounds or 1,
                warmup_rounds=warmup,
                iterations=1,
            )
    except Exception as error:
        if recorder is not None:
            outcome = recorder.failed(error)
        else:
            outcome = Outcome(stage, build_error.status, build_error.message, "none")
        _record_failure(benchmark, result_of(plan, session.record(outcome)), pool)
        return
    outcome = recorder.finish()
    if pilot is not None and pilot.stopping:
        outcome.stopping = dataclasses.replace(
            pilot.stopping,
            criterion=f"{pilot.stopping.criterion} (pilot)",
            rel_ci=relative_ci(list(benchmark.stats.stats.data)),
        )
    measured = session.record(outcome, recorder, stats=_pytest_stats(benchmark), timer=PYTEST_TIMER)
    result = result_of(plan, measured)
    benchmark.extra_info.update(result.to_extra_info())
    if result.status == "invalid":
        pytest.fail(f"{stage} is invalid (kept as a result row): {result.message}", pytrace=False)


def _pytest_stats(benchmark: BenchmarkFixture) -> dict[str, Any]:
    """pytest-benchmark's statistics of the rounds it timed, with the raw rounds in ``data``."""
    stats = benchmark.stats.stats
    return {**stats.as_dict(), "data": list(stats.data)}


class BuildFailed(RuntimeError):
    """Raised inside pedantic when the components could not be built, so pytest-benchmark
    registers the benchmark (and its JSON gets written) even though nothing ran."""


def _raiser(build_error: Outcome):
    def target() -> None:
        raise BuildFailed(build_error.message)

    return target


def _record_failure(benchmark: BenchmarkFixture, result: StageResult, pool: SessionPool) -> None:
    """pytest-benchmark drops a benchmark without stats from its JSON: keep the row to append it."""
    benchmark.extra_info.update(result.to_extra_info())
    row = to_benchmark(result)
    row["name"], row["fullname"] = benchmark.name, benchmark.fullname
    pool.failed_rows.append(row)
    if result.status == "oom":
        pytest.xfail(f"{result.stage} ran out of memory (kept as a result row): {result.message}")
    pytest.fail(f"{result.stage} failed (kept as a result row): {result.message}", pytrace=False)
