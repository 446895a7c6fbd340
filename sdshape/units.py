"""Human formatting of seconds, bytes, FLOPs and shares."""

from __future__ import annotations


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if abs(value) < 1:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


def size(value: float | None) -> str:
    if value is None:
        return "-"
    sign = "-" if value < 0 else ""
    value = abs(value)
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= factor:
            return f"{sign}{value / factor:.2f} {unit}"
    return f"{sign}{value:.0f} B"


def share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def count(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, factor in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {unit}"
    return f"{value:.0f}"
