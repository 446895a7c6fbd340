"""The zoo: components and shapes by name.

Lookups raise :class:`~sdshape.errors.UsageError` naming the valid choices, so the
CLI and the bench suite report an unknown name the same way.
"""

from __future__ import annotations

from sdshape.errors import choices_error
from sdshape.zoo.shapes import SHAPES
from sdshape.zoo.specs import ComponentKind, ComponentSpec, ShapeSpec
from sdshape.zoo.text_encoders import TEXT_ENCODERS
from sdshape.zoo.unets import UNETS
from sdshape.zoo.vaes import VAES

COMPONENTS: dict[str, ComponentSpec] = {c.name: c for c in (*TEXT_ENCODERS, *UNETS, *VAES)}
SHAPE_SPECS: dict[str, ShapeSpec] = {s.name: s for s in SHAPES}

__all__ = [
    "COMPONENTS",
    "SHAPE_SPECS",
    "ComponentKind",
    "ComponentSpec",
    "ShapeSpec",
    "get_component",
    "get_shape",
    "shape_components",
]


def get_component(name: str) -> ComponentSpec:
    try:
        return COMPONENTS[name]
    except KeyError:
        raise choices_error("component", name, sorted(COMPONENTS)) from None


def get_shape(name: str) -> ShapeSpec:
    try:
        return SHAPE_SPECS[name]
    except KeyError:
        raise choices_error("shape", name, list(SHAPE_SPECS)) from None


def shape_components(shape: ShapeSpec) -> dict[ComponentKind, ComponentSpec]:
    """The three component specs of a shape, keyed by kind."""
    if shape.specs is not None:
        return dict(shape.specs)  # type: ignore[arg-type]
    return {kind: get_component(name) for kind, name in shape.components().items()}
