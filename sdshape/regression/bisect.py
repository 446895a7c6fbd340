"""The search of ``sdshape bisect``: the first bad release among releases ordered oldest first, the
first known good and the last known bad.

A release is tested by ``test`` and comes back ``good``, ``bad``, ``undecided`` (its confirmation runs
could not settle it) or ``unbuildable`` (no environment for it). The bad end is tested first: a bad
end that is not bad means there is nothing to find. Then a binary search; a release that is undecided
or unbuildable is stepped around (the untested release nearest the middle is tried instead), as
``git bisect skip`` does, and when only such releases remain between the last good and the first bad,
the answer is that range, not a guess.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

GOOD, BAD, UNDECIDED, UNBUILDABLE = "good", "bad", "undecided", "unbuildable"


@dataclass
class Search:
    """The outcome: the first bad release when one is pinned down, or the range it lies in, and why."""

    releases: list[str]
    tested: dict[str, str] = field(default_factory=dict)  # release -> good | bad | undecided | unbuildable
    first_bad: str | None = None
    range: list[str] = field(default_factory=list)  # the releases the first bad one is among
    note: str = ""


def search(releases: list[str], test: Callable[[str], str]) -> Search:
    """Binary search over ``releases`` (the first good, the last bad) with ``test`` per release."""
    found = Search(list(releases), {releases[0]: GOOD})
    last = releases[-1]
    found.tested[last] = test(last)
    if found.tested[last] != BAD:
        found.note = f"{last} is {found.tested[last]}, not slower than {releases[0]}: nothing to bisect"
        return found
    low, high = 0, len(releases) - 1
    while True:
        candidates = [i for i in range(low + 1, high) if releases[i] not in found.tested]
        if not candidates:
            break
        middle = (low + high) / 2
        index = min(candidates, key=lambda i: (abs(i - middle), i))
        outcome = found.tested[releases[index]] = test(releases[index])
        if outcome == BAD:
            high = index
        elif outcome == GOOD:
            low = index
    found.range = releases[low + 1 : high + 1]
    if len(found.range) == 1:
        found.first_bad = found.range[0]
        found.note = f"{releases[low]} is good and {releases[high]} is bad"
    else:
        skipped = ", ".join(f"{r} {found.tested[r]}" for r in found.range[:-1])
        found.note = f"the first bad release is one of {', '.join(found.range)} ({skipped})"
    return found
