"""Rounds until the median is stable, as nvbench keeps sampling until its noise criterion holds.

``--rounds auto`` (the default on a GPU) times rounds until the 95% confidence
interval of the median is within ``--target-ci`` of it (1% by default), with at
least ``MIN_ROUNDS`` rounds and at most ``--max-rounds`` rounds or
``--max-time`` seconds per stage. The interval is distribution-free: the order
statistics that bracket the median with 95% probability under a binomial(n,
1/2) count, so a skewed or two-humped set of rounds is not mistaken for a tight
one. Each result records how its rounds stopped (``extra_info["stopping"]``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sdshape.core.statistics import CONFIDENCE, relative_ci
from sdshape.result.records import StoppingRecord

MIN_ROUNDS = 5


@dataclass(frozen=True)
class Stopping:
    """When to stop timing rounds: a fixed count, or once the median is stable (within the caps)."""

    fixed: int | None = None  # --rounds K
    # --rounds auto's criterion and caps (their defaults are the run options', sdshape.config.options)
    target_ci: float | None = None
    max_rounds: int | None = None
    max_time_s: float | None = None
    min_rounds: int = MIN_ROUNDS

    def __post_init__(self) -> None:
        if self.fixed is None and None in (self.target_ci, self.max_rounds, self.max_time_s):
            raise ValueError("--rounds auto needs target_ci, max_rounds and max_time_s")

    @property
    def auto(self) -> bool:
        return self.fixed is None

    def done(self, rounds_s: list[float], elapsed_s: float) -> str | None:
        """The criterion that ends the rounds now (``fixed``, ``ci``, ``max_rounds``, ``max_time``), or None."""
        n = len(rounds_s)
        if self.fixed is not None:
            return "fixed" if n >= self.fixed else None
        if n >= self.min_rounds:
            rel = relative_ci(rounds_s)
            if rel is not None and rel <= self.target_ci:
                return "ci"
        if n >= self.max_rounds:
            return "max_rounds"
        if elapsed_s >= self.max_time_s and n >= 1:
            return "max_time"
        return None

    def record(self, criterion: str | None, rounds_s: list[float]) -> StoppingRecord:
        """How the rounds ended, as the row records it."""
        return StoppingRecord(
            criterion=criterion,
            rounds=len(rounds_s),
            rel_ci=relative_ci(rounds_s),
            target_ci=None if self.fixed is not None else self.target_ci,
            confidence=CONFIDENCE,
        )

    def describe(self) -> str:
        if self.fixed is not None:
            return f"{self.fixed} rounds"
        return (
            f"rounds until the median's 95% CI is within {self.target_ci:.1%} "
            f"(at most {self.max_rounds} rounds or {self.max_time_s:g} s)"
        )
