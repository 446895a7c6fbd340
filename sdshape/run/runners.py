"""A session's runners: each stage module prepared by the backend once, with what that cost and made.

Preparation is where compile, export and engine builds happen, timed apart from
the rounds and recorded as an :class:`Artifact` per module. A module whose
preparation fails gets a :class:`FailedRunner`, so only the stages that use it
fail. A cached artifact found corrupt by its output (NaN or Inf against the
reference) is dropped and prepared again, once, and the console says so.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any

import torch

from sdshape.backends import artifact_of
from sdshape.backends.base import Artifact, Backend, FailedRunner, Runner
from sdshape.config.identity import artifact_slot
from sdshape.config.plan import Plan
from sdshape.core.vocabulary import KIND_OF_STAGE, KINDS
from sdshape.measurement.measure import classify_failure
from sdshape.models.specs import ComponentSpec
from sdshape.run.measured import MeasuredStage
from sdshape.run.progress import ProgressDisplay, TaskID


class Runners:
    def __init__(
        self,
        backend: Backend,
        label: str,
        plan: Plan,
        specs: dict[str, ComponentSpec],
        environment: dict[str, Any],
        builds_nothing: bool,
        progress: ProgressDisplay | None = None,
    ):
        self.backend, self.label, self.plan, self.specs = backend, label, plan, specs
        self.environment, self.builds_nothing, self.progress = environment, builds_nothing, progress
        self.artifacts: dict[str, Artifact] = {}
        self.runners: dict[str, Runner] = {}
        self.prepare_s = 0.0
        self._made_from: dict[str, tuple[Any, tuple[torch.Tensor, ...]]] = {}

    def say(self, text: str) -> None:
        """A line on the console (stderr), beside the progress display."""
        console = getattr(self.progress, "console", None)
        if console is not None:
            console.print(f"sdshape: {text}", highlight=False, soft_wrap=True)
        else:
            print(f"sdshape: {text}", file=sys.stderr)

    def _task(self, description: str) -> TaskID | None:
        return self.progress.add_task(description) if self.progress is not None else None

    def _describe(self, task: TaskID | None, description: str) -> None:
        if self.progress is not None and task is not None:
            self.progress.update(task, description=description)

    def prepare(self, kind: str, module: Any, inputs: tuple[torch.Tensor, ...]) -> Runner:
        """The backend's runner for one stage module; a failure fails only the stages that use it."""
        task = self._task(f"{self.label}: preparing {kind}")
        plan = self.plan
        slot = artifact_slot(
            plan.cache_dir, plan.cache_fallback, self.specs[kind], kind, inputs, plan.precision_of(kind), plan.device,
            self.environment,
        )  # fmt: skip
        self._made_from[kind] = (module, inputs)
        start = time.perf_counter()
        try:
            runner = self.backend.prepare(module, inputs, plan.precision_of(kind), plan.device, slot)
        except Exception as error:
            message = f"preparing {kind} failed: {classify_failure(error)[1]}"
            self._describe(task, f"{self.label}: {message}")
            self.say(f"{self.label}: {message}")
            runner = FailedRunner(message)
        prepare_s = time.perf_counter() - start
        artifact = artifact_of(runner)
        if not hasattr(runner, "artifact") and not self.builds_nothing:
            artifact.build_s = prepare_s  # a backend that reports nothing: its whole prepare is its build
        artifact.prepare_s = prepare_s
        self.artifacts[kind] = artifact
        self.runners[kind] = runner
        self.prepare_s += prepare_s
        self._describe(task, f"{self.label}: {kind} {artifact.cache} ({artifact.build_s:.1f} s)")
        for note in artifact.notes:
            if "rebuilt" in note or "read-only" in note:
                self.say(f"{self.label}: {kind}: {note}")
        return runner

    def rebuild(self, kinds: list[str], why: str) -> dict[str, Runner]:
        """Drop the cached artifacts of ``kinds`` and prepare their runners again; the new runners."""
        rebuilt = {}
        for kind in kinds:
            artifact = self.artifacts.get(kind)
            if artifact is not None and artifact.path:
                shutil.rmtree(artifact.path, ignore_errors=True)
            module, inputs = self._made_from[kind]
            runner = self.prepare(kind, module, inputs)
            artifact_of(runner).notes.append(why)
            self.say(f"{self.label}: {kind}: {why}")
            rebuilt[kind] = runner
        return rebuilt

    def close(self) -> None:
        """Close every runner (a backend's state outside it, such as Dynamo's caches) and let go of them."""
        for runner in self.runners.values():
            close = getattr(runner, "close", None)
            if callable(close):
                close()
        self.runners.clear()
        self._made_from.clear()


def reused_broken(measured: MeasuredStage, artifacts: dict[str, Artifact]) -> list[str]:
    """The reused cached artifacts a stage ran on, when its output held NaN or Inf (else none): corrupt,
    whatever their checksum said, so the session rebuilds them and measures the stage again, once."""
    found = measured.parity
    if measured.status != "invalid" or found is None or not (found.nan or found.inf):
        return []
    kinds = [KIND_OF_STAGE[measured.stage]] if measured.stage in KIND_OF_STAGE else list(KINDS)
    return [kind for kind in kinds if kind in artifacts and artifacts[kind].cache == "reused"]
