"""Progress for long reports: nothing for a report of a few runs, a display once a large one runs long.

A report of a few runs says nothing on stderr, however slow the machine (its one line of output, or its
one line of error, stays alone); a report of thousands of runs or files shows where it is. The display
is made by the caller (``sdshape report``: rich bars on a terminal, timestamped lines in logs) and
entered once a task of at least :data:`MANY` items is under way and the work has run
:data:`SHOW_AFTER_S`; the tasks begun before then appear with what they have done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

SHOW_AFTER_S = 2.0
MANY = 100  # items in a task (runs, files) that make the work large


class LateProgress:
    """The ``add_task``/``update`` subset of :class:`rich.progress.Progress`, held back until a task of
    ``many`` items or more is under way and the work has run ``after_s``; without a ``display`` factory,
    nothing is ever shown."""

    def __init__(
        self,
        display: Callable[[], Any] | None = None,
        after_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        many: int | None = None,
    ):
        self._make = display
        self._display: Any = None
        self._after_s = SHOW_AFTER_S if after_s is None else after_s
        self._many = MANY if many is None else many
        self._clock = clock
        self._start = clock()
        self._tasks: list[dict[str, Any]] = []

    @property
    def shown(self) -> bool:
        return self._display is not None

    def __enter__(self) -> LateProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._display is not None:
            self._display.__exit__(None, None, None)

    def add_task(self, description: str, total: float | None = None, **_: Any) -> int:
        self._tasks.append({"description": description, "total": total, "completed": 0, "id": None})
        self._show_if_long()
        task = self._tasks[-1]
        if self._display is not None and task["id"] is None:
            task["id"] = self._display.add_task(description, total=total)
        return len(self._tasks) - 1

    def update(self, task: int, *, advance: float = 0, **_: Any) -> None:
        state = self._tasks[task]
        state["completed"] += advance
        if state["id"] is not None:
            self._display.update(state["id"], advance=advance)
        else:
            self._show_if_long()  # a task shown now starts at what it has done

    def _show_if_long(self) -> None:
        if self._display is not None or self._make is None or self._clock() - self._start < self._after_s:
            return
        if not any((state["total"] or 0) >= self._many for state in self._tasks):
            return
        self._display = self._make()
        self._display.__enter__()
        for state in self._tasks:
            if state["total"] is None or state["completed"] < state["total"]:  # finished tasks stay unsaid
                state["id"] = self._display.add_task(state["description"], total=state["total"])
                self._display.update(state["id"], completed=state["completed"])
