"""Human formatting of seconds, bytes, FLOPs and shares."""

from __future__ import annotations

import re

from sdshape.core.errors import UsageError

GIB = 2**30


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


def parse_size(text: str, flag: str = "--vram-cap") -> int:
    """'8GiB', '12GB', '24G', '8192MiB' -> bytes (GB and G are read as GiB, as cards are marketed)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(GiB|GB|G|MiB|MB|M)\s*", text, flags=re.IGNORECASE)
    if not match:
        raise UsageError(f"{flag} {text!r}: not a size; write e.g. 8GiB, 12GB or 8192MiB")
    value, unit = float(match.group(1)), match.group(2).lower()
    size = int(value * (GIB if unit.startswith("g") else 2**20))
    if size <= 0:
        raise UsageError(f"{flag} {text!r}: must be positive")
    return size
