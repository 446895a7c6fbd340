"""The Pareto fronts the explorer's charts draw, as plain data (no torch, no drawing): which compositions no
other beats on both axes."""

from __future__ import annotations

from typing import Any


def params_front(points: list[tuple[float, float, Any]]) -> list[tuple[float, float, Any]]:
    """(parameters, cost) points not beaten on both axes by another: more parameters for less cost."""
    front = []
    for x, y, c in sorted(points, key=lambda p: (-p[0], p[1])):
        if not front or y < front[-1][1]:
            front.append((x, y, c))
    return sorted(front, key=lambda p: p[0])


def pareto_front(points: list[tuple[float, float, Any]]) -> list[tuple[float, float, Any]]:
    """(VRAM, seconds) points no other beats on both axes (less VRAM and fewer seconds), by VRAM."""
    front: list[tuple[float, float, Any]] = []
    for x, y, c in sorted(points, key=lambda p: (p[0], p[1])):
        if not front or y < front[-1][1]:
            front.append((x, y, c))
    return front
