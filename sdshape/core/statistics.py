"""The median's distribution-free confidence interval: what ``--rounds auto`` stops on and what every
reader shows as a row's spread (``StageResult.ci``), so the reading side needs it without torch.

The interval is bounded by the order statistics that bracket the median with 95% probability under a
binomial(n, 1/2) count, so a skewed or two-humped set of rounds is not mistaken for a tight one.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

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


def median(values: Any) -> float:
    """The median, as :func:`statistics.median`, without its overflow: the mean of the two middle values
    is taken as halves (two values near the largest float sum to infinity)."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise statistics.StatisticsError("no median for empty data")
    if n % 2:
        return ordered[n // 2]
    low, high = ordered[n // 2 - 1], ordered[n // 2]
    return low / 2 + high / 2


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None where that is not a finite number (a zero or tiny denominator)."""
    try:
        value = numerator / denominator
    except (ZeroDivisionError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def relative_ci(values: Any) -> float | None:
    """Half the interval's width over the median: 0.01 means the median is known to within 1%."""
    interval = median_ci(values)
    if interval is None:
        return None
    middle = median(values)
    return ratio(interval[1] / 2 - interval[0] / 2, middle) if middle > 0 else None
