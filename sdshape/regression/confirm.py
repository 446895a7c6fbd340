"""Confirmation runs: run a job again while a verdict is open, and stop when it is settled or the budget
is spent.

A verdict that more runs can settle is *open*: ``compare``'s ``undecided`` (too few rounds for any
outcome to reach significance) and ``history``'s ``suspicious`` step with fewer than two runs after it.
The loop here knows neither: it asks ``open_items`` what is still open (given the confirmation runs so
far), and ``rerun`` for one more run, until nothing is open, ``runs`` runs were made, or one more run
would not fit in ``minutes`` (judged by the longest run so far). The clock is injected, so the stopping
rules are tested deterministically with a scripted one.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sdshape.core.statistics import median
from sdshape.result.io import ResultFile

Run = TypeVar("Run")

SETTLED, RUNS_SPENT, TIME_SPENT = "settled", "run budget spent", "time budget spent"
DEFAULT_RUNS = 5


@dataclass(frozen=True)
class Budget:
    """At most ``runs`` confirmation runs, and (when set) no run started that would end past ``minutes``."""

    runs: int = DEFAULT_RUNS
    minutes: float | None = None


@dataclass
class Outcome(Generic[Run]):
    """What the confirmation runs did: the runs, why they stopped, and what was still open then."""

    runs: list[Run] = field(default_factory=list)
    stopped: str = SETTLED  # settled | run budget spent | time budget spent
    still_open: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def settled(self) -> bool:
        return self.stopped == SETTLED


def confirm(
    open_items: Callable[[list[Run]], list[str]],
    rerun: Callable[[int], Run],
    budget: Budget,
    clock: Callable[[], float] = time.monotonic,
    say: Callable[[str], None] = lambda line: None,
) -> Outcome[Run]:
    """Rerun until ``open_items(runs)`` is empty or the budget is spent; ``say`` gets one line per run."""
    runs: list[Run] = []
    start = clock()
    longest = 0.0
    while True:
        pending = open_items(runs)
        elapsed = clock() - start
        if not pending:
            return Outcome(runs, SETTLED, [], elapsed)
        if len(runs) >= budget.runs:
            return Outcome(runs, RUNS_SPENT, pending, elapsed)
        if budget.minutes is not None and elapsed + longest > budget.minutes * 60:
            return Outcome(runs, TIME_SPENT, pending, elapsed)
        shown = ", ".join(pending[:3]) + (f" and {len(pending) - 3} more" if len(pending) > 3 else "")
        say(f"confirmation run {len(runs) + 1} of at most {budget.runs}: open: {shown}")
        began = clock()
        runs.append(rerun(len(runs) + 1))
        longest = max(longest, clock() - began)


def pooled(first: ResultFile, more: list[ResultFile]) -> ResultFile:
    """``first`` with each row's raw rounds joined by the rounds of the same id in ``more`` (the same job
    run again): what ``compare`` judges after confirmation runs. Rows only in ``more`` are left out."""
    if not more:
        return first
    rows: dict[tuple, Any] = {}
    for key, row in first.rows.items():
        joined = copy.copy(row)
        joined.timing = copy.copy(row.timing)
        joined.timing.rounds_s = [*row.timing.rounds_s]
        for extra in more:
            if key in extra.rows and extra.rows[key].status == "ok":
                joined.timing.rounds_s += list(extra.rows[key].timing.rounds_s)
        if joined.timing.stats is not None and joined.timing.rounds_s:  # the pooled median, not the first run's
            joined.timing.stats = {**joined.timing.stats, "median": median(joined.timing.rounds_s), "iqr": None}
        rows[key] = joined
    return ResultFile(first.path, first.machine_info, rows, first.datetime)
