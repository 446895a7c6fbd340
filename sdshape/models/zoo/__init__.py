"""The zoo: components and shapes by name, shared ones and those each model family registers.

Lookups raise :class:`~sdshape.core.errors.UsageError` naming the valid choices, so the
CLI and the bench suite report an unknown name the same way.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sdshape.core.errors import choices_error
from sdshape.models.zoo.specs import ComponentKind, ComponentSpec, ShapeSpec
from sdshape.models.zoo.text_encoders import TEXT_ENCODERS
from sdshape.models.zoo.vaes import VAES


@cache
def _components() -> dict[str, ComponentSpec]:
    """Shared text encoders and VAEs, then each model family's own components."""
    from sdshape.models import families

    return {c.name: c for c in (*TEXT_ENCODERS, *VAES, *families.components())}


@cache
def _shapes() -> dict[str, ShapeSpec]:
    from sdshape.models import families

    return {s.name: s for s in families.shapes()}


def __getattr__(name: str) -> Any:
    """``COMPONENTS`` and ``SHAPE_SPECS``, gathered on first use: the families' zoos import this package's
    spec types, so the registry cannot be read while this package is still being imported."""
    if name == "COMPONENTS":
        return _components()
    if name == "SHAPE_SPECS":
        return _shapes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "COMPONENTS",
    "SHAPE_SPECS",
    "ComponentKind",
    "ComponentSpec",
    "ShapeSpec",
    "get_component",
    "get_shape",
    "published_shapes",
    "shape_components",
]


def published_shapes() -> tuple[ShapeSpec, ...]:
    """The published systems, by year of publication, then in the order their families register them."""
    return tuple(sorted((s for s in _shapes().values() if s.year is not None), key=lambda s: s.year or 0))


def get_component(name: str) -> ComponentSpec:
    try:
        return _components()[name]
    except KeyError:
        raise choices_error("component", name, sorted(_components())) from None


def get_shape(name: str) -> ShapeSpec:
    try:
        return _shapes()[name]
    except KeyError:
        raise choices_error("shape", name, list(_shapes())) from None


def shape_components(shape: ShapeSpec) -> dict[ComponentKind, ComponentSpec]:
    """The three component specs of a shape, keyed by kind."""
    if shape.specs is not None:
        return dict(shape.specs)  # type: ignore[arg-type]
    return {kind: get_component(name) for kind, name in shape.components().items()}
