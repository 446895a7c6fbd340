"""Progress display: rich bars on a terminal, plain lines in logs (CI, pipes).

Both expose the subset of :class:`rich.progress.Progress` the session uses
(``add_task``, ``update``), so the session never asks which one it has.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

TaskID = int  # rich's TaskID is an int too


class ProgressDisplay(Protocol):
    """What sessions, campaigns and runners call on a progress display (rich's ``Progress`` or
    :class:`LineProgress`); ``console`` is where a line beside the display goes."""

    console: Console

    def add_task(self, description: str, total: float | None = None) -> TaskID: ...

    def update(
        self,
        task: TaskID,
        *,
        advance: float | None = None,
        completed: float | None = None,
        description: str | None = None,
    ) -> None: ...


class LineProgress:
    """Prints a timestamped line when a task starts or changes description, and on rounds
    at most every ``QUIET_S`` seconds, so a log shows that long work is moving."""

    QUIET_S = 2.0

    def __init__(self, console: Console):
        self.console = console
        self._tasks: dict[int, dict[str, Any]] = {}
        self._start = time.perf_counter()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _say(self, text: str, task: int | None = None) -> None:
        if task is not None:
            self._tasks[task]["said"] = time.perf_counter()
        self.console.print(f"[{time.perf_counter() - self._start:7.1f}s] {text}", highlight=False, soft_wrap=True)

    def add_task(self, description: str, total: float | None = None, **_: Any) -> int:
        task = len(self._tasks)
        self._tasks[task] = {"description": description, "total": total, "completed": 0, "said": time.perf_counter()}
        self._say(description)
        return task

    def update(
        self,
        task: int,
        *,
        advance: float | None = None,
        completed: float | None = None,
        description: str | None = None,
        **_: Any,
    ) -> None:
        state = self._tasks[task]
        if advance:
            state["completed"] += advance
        if completed is not None:
            state["completed"] = completed
        if description and description != state["description"]:
            state["description"] = description
            self._say(description, task)
        elif advance and state["total"] and time.perf_counter() - state["said"] >= self.QUIET_S:
            self._say(f"{state['description']}: {state['completed']:.0f}/{state['total']:.0f}", task)


def make_progress(console: Console) -> Progress | LineProgress:
    if console.is_terminal:
        return Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
    return LineProgress(console)
