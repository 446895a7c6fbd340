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

import math
import statistics
from dataclasses import dataclass
from typing import Any

MIN_ROUNDS = 5
CONFIDENCE = 0.95


def _binomial_cdf(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2)."""
    if n <= 1000:
        return sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    # normal approximation with continuity correction for long runs
    return 0.5 * (1 + math.erf((k + 0.5 - n / 2) / math.sqrt(n / 4) / math.sqrt(2)))


def median_ci(values: Any, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The distribution-free confidence interval of the median: (low, high), or None with too few values.

    The interval [x_(j), x_(n+1-j)] (1-based order statistics) covers the median with probability
    1 - 2 P(X <= j-1), X ~ Binomial(n, 1/2); j is the largest index keeping that at least ``confidence``.
    """
    ordered = sorted(values)
    n = len(ordered)
    tail = (1 - confidence) / 2
    j = 0
    while j + 1 <= n // 2 and _binomial_cdf(j, n) <= tail:
        j += 1
    if j == 0:  # even the extremes do not bracket the median with this confidence (n < 6 at 95%)
        return None
    return ordered[j - 1], ordered[n - j]


def relative_ci(values: Any) -> float | None:
    """Half the interval's width over the median: 0.01 means the median is known to within 1%."""
    interval = median_ci(values)
    if interval is None:
        return None
    median = statistics.median(values)
    return (interval[1] - interval[0]) / 2 / median if median > 0 else None


@dataclass(frozen=True)
class Stopping:
    """When to stop timing rounds: a fixed count, or once the median is stable (within the caps)."""

    fixed: int | None = None  # --rounds K
    target_ci: float = 0.01
    max_rounds: int = 100
    max_time_s: float = 60.0
    min_rounds: int = MIN_ROUNDS

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

    def record(self, criterion: str | None, rounds_s: list[float]) -> dict[str, Any]:
        return {
            "criterion": criterion,
            "rounds": len(rounds_s),
            "rel_ci": relative_ci(rounds_s),
            "target_ci": None if self.fixed is not None else self.target_ci,
            "confidence": CONFIDENCE,
        }

    def describe(self) -> str:
        if self.fixed is not None:
            return f"{self.fixed} rounds"
        return (
            f"rounds until the median's 95% CI is within {self.target_ci:.1%} "
            f"(at most {self.max_rounds} rounds or {self.max_time_s:g} s)"
        )
