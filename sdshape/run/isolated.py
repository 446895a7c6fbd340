"""``--isolate``: each session (and the parity reference) in a fresh process.

Within one process, what an earlier backend leaves behind (cuBLAS and cuDNN workspaces, lazily loaded
kernels, Inductor's state, ONNX Runtime's libraries) sits in a later backend's baseline and is missing
from its peaks; a spawned process per session starts clean, as optimum-benchmark's process launcher
does. Rows come back as :class:`StageResult` objects, the reference as host tensors; a process that
dies without answering leaves error rows that say how it ended. The campaign (``sdshape.run.campaign``)
decides when; this module only runs one session elsewhere and brings its answer back.
"""

from __future__ import annotations

import importlib
import multiprocessing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sdshape.config.plan import Plan
from sdshape.core.errors import UsageError
from sdshape.core.vocabulary import STAGES
from sdshape.models import families
from sdshape.result.model import ResultId, StageResult
from sdshape.run.reference import Reference

if TYPE_CHECKING:
    from sdshape.run.campaign import Campaign

OnSession = Callable[[list[StageResult], dict[str, Any]], None]


def _worker(
    plan: Plan,
    label: str | None,
    reference: dict[str, Any] | None,
    queue: multiprocessing.Queue,
    families_added: tuple[str, ...] = (),
) -> None:
    """In the fresh process: one session (or the reference); the answer goes back through ``queue``.

    ``families_added``: the family modules the parent registered at run time (``families.register``), which
    a spawned process, starting with the built-in and installed families only, registers again first."""
    from rich.console import Console

    from sdshape.run.campaign import Campaign
    from sdshape.run.progress import LineProgress

    campaign = Campaign(plan, LineProgress(Console(stderr=True)))
    campaign.reference = Reference.from_portable(reference)
    try:
        for module in families_added:
            families.register(importlib.import_module(module))
        if label is None:
            computed = campaign.compute_reference()
            queue.put(("reference", computed.portable() if computed else None))
            return
        results, environment = campaign.measure(label)
        computed = campaign.reference if reference is None else None
        queue.put(("session", results, environment, computed.portable() if computed else None))
    except UsageError as error:
        queue.put(("usage", str(error)))
    except BaseException as error:
        queue.put(("crash", f"{type(error).__name__}: {error}"))


def _in_process(plan: Plan, label: str | None, reference: Reference | None) -> tuple:
    """Run ``_worker`` in a spawned process and wait for its answer, or for its end."""
    from queue import Empty

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    portable = reference.portable() if reference else None
    args = (plan, label, portable, queue, families.added_modules())
    process = context.Process(target=_worker, args=args, name=f"sdshape-{label}")
    process.start()
    answer = None
    while answer is None:
        try:
            answer = queue.get(timeout=1.0)
        except Empty:
            if not process.is_alive():
                try:  # it may have answered just before it ended
                    answer = queue.get(timeout=5.0)
                except Empty:
                    break
    process.join()
    if answer is None:
        return ("crash", f"the isolated process exited with code {process.exitcode} before answering")
    return answer


def _failed_rows(plan: Plan, label: str, message: str) -> list[StageResult]:
    shape = plan.options.shape if plan.weights is None else f"weights:{plan.weights.name}"
    return [
        StageResult(
            ResultId(
                stage,
                shape,
                label,
                plan.options.precision,
                plan.options.batch,
                plan.options.resolution,
                plan.options.steps,
            ),
            status="error",
            message=message,
        )
        for stage in STAGES
    ]


def run_isolated(campaign: Campaign, on_session: OnSession | None) -> None:
    """The campaign's backends, each in its own process, in the campaign's order."""
    plan = campaign.plan
    if plan.options.parity and not campaign.reference_in_run:
        kind, *payload = _in_process(campaign.reference_plan(), None, None)
        if kind == "usage":
            raise UsageError(payload[0])
        campaign.reference = Reference.from_portable(payload[0]) if kind == "reference" else None
    for label in campaign.labels:
        kind, *payload = _in_process(plan, label, campaign.reference)
        if kind == "usage":
            raise UsageError(payload[0])
        if kind == "crash":
            results, environment = _failed_rows(plan, label, f"isolated session failed: {payload[0]}"), {}
        else:
            results, environment, computed = payload
            if campaign.reference is None and plan.options.parity:
                campaign.reference = Reference.from_portable(computed)
        if on_session is not None:
            on_session(results, environment)
