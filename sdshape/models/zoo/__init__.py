"""The zoo: components and shapes by name, shared ones and those each model family registers.

The spec types (``sdshape.models.specs``) and the shared components (``sdshape.models.shared``) sit below
both this zoo and the families' zoos, so the families import neither this package nor each other, and
this package imports them plainly. ``all_components()`` and ``all_shapes()`` are functions, not module
constants: a family registered at run time (``families.register``) clears their caches and joins them.

Lookups raise :class:`~sdshape.core.errors.UsageError` naming the valid choices, so the
CLI and the bench suite report an unknown name the same way.
"""

from __future__ import annotations

from functools import cache

from sdshape.core.errors import choices_error
from sdshape.models import families
from sdshape.models.shared.text_encoders import TEXT_ENCODERS
from sdshape.models.shared.vaes import VAES
from sdshape.models.specs import ComponentKind, ComponentSpec, ShapeSpec

__all__ = [
    "ComponentKind",
    "ComponentSpec",
    "ShapeSpec",
    "all_components",
    "all_shapes",
    "get_component",
    "get_shape",
    "published_shapes",
    "shape_components",
]


@cache
def _components() -> dict[str, ComponentSpec]:
    """Shared text encoders and VAEs, then each model family's own components."""
    return {c.name: c for c in (*TEXT_ENCODERS, *VAES, *families.components())}


@cache
def _shapes() -> dict[str, ShapeSpec]:
    return {s.name: s for s in families.shapes()}


def all_components() -> dict[str, ComponentSpec]:
    """Every component by name (the shared ones, then each registered family's)."""
    return _components()


def all_shapes() -> dict[str, ShapeSpec]:
    """Every shape by name, in the order the families register them."""
    return _shapes()


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
