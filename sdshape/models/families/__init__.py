"""The model families, registered once: each a folder with its zoo (torch-free) and its call contract.

A family is chosen by its denoiser's library class (``family_of``). This module and every family's
``__init__``/``zoo`` are torch-free, so the zoo and the reading side can list them without torch;
``Family`` objects (``family.py``) import torch and are loaded on first use.

To add a family: a folder ``sdshape/models/families/NAME/`` with ``__init__.py`` (NAME, DENOISER_CLASSES,
COMPONENTS, SHAPES, ``make_family()``), ``zoo.py`` and ``family.py``, and its module in ``REGISTERED``.
"""

from __future__ import annotations

from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sdshape.core.errors import UsageError
from sdshape.models.families import flux, pixart, sd3, unet

if TYPE_CHECKING:
    from sdshape.models.families.base import Family

REGISTERED: tuple[ModuleType, ...] = (unet, pixart, sd3, flux)  # one registration per family


def components() -> list[Any]:
    """Every family's own components (denoisers, and any text encoder or VAE only it uses)."""
    return [spec for module in REGISTERED for spec in module.COMPONENTS]


def shapes() -> list[Any]:
    return [shape for module in REGISTERED for shape in module.SHAPES]


def family_name_of(library_class: str) -> str:
    for module in REGISTERED:
        if library_class in module.DENOISER_CLASSES:
            return module.NAME
    known = sorted(c for module in REGISTERED for c in module.DENOISER_CLASSES)
    raise UsageError(f"no model family runs a {library_class!r} denoiser; known: {', '.join(known)}")


@cache
def get_family(name: str) -> Family:
    for module in REGISTERED:
        if name == module.NAME:
            return module.make_family()
    raise UsageError(f"unknown model family {name!r}; choose from {', '.join(m.NAME for m in REGISTERED)}")


def family_of(denoiser: Any) -> Family:
    """The family that runs this denoiser spec (by its library class)."""
    return get_family(family_name_of(denoiser.library_class))
