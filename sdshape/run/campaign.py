"""The campaign: backends measured in turn, one resident at a time, each session's baseline read clean.

The one place that decides lifetimes, for ``sdshape run``, ``pytest bench/`` and
the explorer:

- once, before any baseline: the CUDA context (measured, then left out of every
  session's peaks alike) and the energy counter's update period;
- the parity reference: eager fp32 when it is in the run (it runs first and is
  used stage by stage), else one untimed eager fp32 run before the others, kept
  on the host;
- each backend's session, closed and its memory released before the next one's
  baseline is read (:meth:`Campaign.open` passes it the level to come back to).
- each stage's row, from the plan and the value its session measured
  (``sdshape.run.recording.result_of``);
- once, after the last session is closed: the reference workload (a fixed GEMM and
  copies, ``sdshape.measurement.reference_workload``; ``--no-reference`` skips it),
  stamped on every row of the run. Last, so that what it leaves in the process
  (cuBLAS's workspace) sits in no session's baseline;
- last, what only the whole run knows: each stage's share of time and energy and the
  pipeline's residual (``sdshape.result.shares``).

With ``isolate`` (``sdshape run --isolate``) each session (and the reference) runs in a
fresh process (``sdshape.run.isolated``), so what an earlier backend leaves behind sits in
no later backend's baseline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from sdshape.config.plan import Plan
from sdshape.core.vocabulary import DEFAULT_POLICY, STAGES
from sdshape.measurement import energy
from sdshape.measurement.nvml import reading_source
from sdshape.measurement.sampling import ReadingSource
from sdshape.result.model import StageResult
from sdshape.result.records import ReferenceWorkload
from sdshape.result.shares import assemble
from sdshape.run.isolated import OnSession, run_isolated
from sdshape.run.progress import ProgressDisplay
from sdshape.run.recording import result_of
from sdshape.run.reference import Reference, untimed_reference
from sdshape.run.session import Handover, Session


def create_cuda_context(device: torch.device, source: ReadingSource) -> int | None:
    """Create the CUDA context now, before any session's baseline, and return its size as NVML sees it.

    Every session's baseline then includes the context, so no session's peak does
    and all of them compare alike; the context is reported on its own
    (``memory.cuda_context_bytes``), and the feasibility model and ``--vram-cap``
    add it back, as a real card must hold it.
    """
    before = source.read().get("nvml_process_bytes") or 0
    probe = torch.empty(1, device=device)
    torch.cuda.synchronize(device)
    after = source.read().get("nvml_process_bytes")
    reserved = torch.cuda.memory_reserved(device)
    del probe
    torch.cuda.empty_cache()
    return None if after is None else max(0, after - before - reserved)


class Campaign:
    def __init__(self, plan: Plan, progress: ProgressDisplay | None = None):
        self.plan = plan
        self.progress = progress
        self.reference: Reference | None = None
        self.reference_workload: ReferenceWorkload | None = None  # measured at the end of run()
        self._level: dict[str, float | int | None] | None = None
        self._weights = 0
        self._context: int | None = None
        self._period: float | None = None
        self._started = False

    @property
    def labels(self) -> list[str]:
        """The plan's backends, eager first (eager fp32 is the reference when it is in the run)."""
        return sorted(self.plan.backends, key=lambda label: self.plan.backend(label)[0] != "eager")

    @property
    def reference_in_run(self) -> bool:
        resident = self.plan.options.policy == DEFAULT_POLICY
        return self.plan.options.precision == "fp32" and "eager" in self.plan.backends and resident

    def _start(self) -> None:
        """Once per campaign, before any baseline: the CUDA context and the energy counter's period."""
        if self._started:
            return
        self._started = True
        device = self.plan.device
        if device.type != "cuda":
            return
        source, nvml, _ = reading_source(device)
        self._context = create_cuda_context(device, source)
        if nvml is not None:
            self._period = energy.counter_period(source.energy_mj)

    def open(self, label: str, reference: Reference | None = None, plan: Plan | None = None) -> Session:
        """A new session for ``label``, entered: its baseline is read once memory is back down."""
        self._start()
        session = Session(
            plan or self.plan,
            label,
            progress=self.progress,
            reference=reference,
            handover=Handover(self._level, self._weights, self._context, self._period),
        )
        return session.__enter__()

    def close(self, session: Session) -> None:
        """Close a session; the next ``open`` releases its memory and checks that it went."""
        self._level = session.sampler.baseline
        self._weights = session.resident_weights_bytes or 0
        session.__exit__(None, None, None)

    @contextmanager
    def session(self, label: str, reference: Reference | None = None, plan: Plan | None = None) -> Iterator[Session]:
        """``with campaign.session(label) as session:`` an opened session, closed however the block ends.
        (``open``/``close`` stay for the pytest-benchmark pool, which keeps a session across tests.)"""
        session = self.open(label, reference, plan)
        try:
            yield session
        finally:
            self.close(session)

    def reference_plan(self) -> Plan:
        """Eager fp32 on the plan's inputs, all resident: a residency policy only moves weights, so its outputs
        must match all resident's, and parity says whether they do. (The VAE's tiling and slicing are kept:
        they change how the decode computes, not where weights live.)"""
        return dataclasses.replace(
            self.plan.with_options(precision="fp32", backend="eager", policy=DEFAULT_POLICY),
            backend_specs={"eager": ("eager", {})},
            vram_cap_bytes=None,  # the reference runs uncapped, before any cap is set
        )

    def compute_reference(self) -> Reference | None:
        """Eager fp32 outputs of each stage on the shared inputs (one untimed run each), on the host.

        Returns None when the reference cannot be built (parity then reads as not checked).
        """
        with self.session("eager", plan=self.reference_plan()) as session:
            session.build()
            if session.build_error is not None:
                return None
            task = session._task("reference: eager fp32 outputs for parity", total=len(STAGES))
            return untimed_reference(session.stages, self.progress, task)

    def measure(self, label: str) -> tuple[list[StageResult], dict[str, Any]]:
        """One backend's session, all four stages; it becomes the reference when it is eager fp32."""
        with self.session(label, self.reference) as session:
            session.build()
            results = [result_of(session.plan, measured) for measured in session.measure_all()]
            if self.reference is None and self.plan.options.parity:
                self.reference = session.as_reference()
            return results, session.environment

    def run(self, on_session: OnSession | None = None) -> None:
        """Measure every backend of the plan in turn, with parity against eager fp32, then the reference
        workload, which every row handed to ``on_session`` then carries, and the shares and residual across
        the rows (the same objects: a caller that keeps them, as ``sdshape run`` does, writes them after this
        returns)."""
        handed: list[StageResult] = []

        def keep(results: list[StageResult], environment: dict[str, Any]) -> None:
            handed.extend(results)
            if on_session is not None:
                on_session(results, environment)

        if self.plan.options.isolate:
            run_isolated(self, keep)
        else:
            if self.plan.options.parity and not self.reference_in_run:
                self.reference = self.compute_reference()
            for label in self.labels:
                keep(*self.measure(label))
        stamp_reference(handed, self.measure_reference_workload())
        assemble(handed)

    def measure_reference_workload(self) -> ReferenceWorkload | None:
        """The reference workload on the plan's device, once (None with ``--no-reference``)."""
        if self.plan.options.reference_workload and self.reference_workload is None:
            from sdshape.measurement.reference_workload import measure

            self.reference_workload = measure(self.plan.device, self.progress)
        return self.reference_workload


def stamp_reference(results: list[StageResult], reference: ReferenceWorkload | None) -> None:
    """Every row of the run carries the run's reference workload (rows are compared one by one)."""
    for result in results:
        result.reference = reference
