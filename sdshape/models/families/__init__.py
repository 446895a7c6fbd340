"""The model families: each a folder with its zoo (torch-free) and its call contract, registered here.

A family is chosen by its denoiser's library class (``family_of``). This module and every family's
``__init__``/``zoo`` are torch-free, so the zoo and the reading side can list them without torch;
``Family`` objects (``family.py``) import torch and are loaded on first use.

A family module declares ``NAME``, ``DENOISER_CLASSES``, ``COMPONENTS``, ``SHAPES`` and ``make_family()``.
Three ways in, in this order: the built-ins (``BUILTIN``), the modules installed packages name in the
entry-point group ``sdshape.families`` (discovered on first use, as backends are through
``sdshape.backends``), and the modules passed to :func:`register` at run time (a test's toy family, a
notebook's experiment). Each is checked on the way in: a missing member, a NAME already taken, a
denoiser class another family runs, or a component or shape name already in the zoo is a one-line
:class:`~sdshape.core.errors.UsageError` naming it, so two families never silently shadow each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sdshape.core.errors import UsageError
from sdshape.models.families import flux, pixart, sd3, unet

if TYPE_CHECKING:
    from sdshape.models.families.base import Family

BUILTIN: tuple[ModuleType, ...] = (unet, pixart, sd3, flux)
ENTRY_POINT_GROUP = "sdshape.families"
REQUIRED_MEMBERS = ("NAME", "DENOISER_CLASSES", "COMPONENTS", "SHAPES", "make_family")

_plugins: list[ModuleType] | None = None  # the entry points' modules, once discovered
_added: list[ModuleType] = []  # register()'d in this process, in call order


def registered() -> tuple[ModuleType, ...]:
    """Every family module: the built-ins, the installed plugins, then those registered at run time."""
    return (*BUILTIN, *_installed(), *_added)


def register(module: ModuleType) -> None:
    """Add a family module (a folder anywhere, imported by the caller): its shapes and components join the
    zoo, its denoiser classes find it. Refused, in one line, when it would clash with a registered one."""
    _check(module, module.__name__, registered())
    _added.append(module)
    _forget_lookups()


def unregister(name: str) -> None:
    """Remove a family added with :func:`register` (a test's teardown); built-ins and plugins stay."""
    for module in _added:
        if name == module.NAME:
            _added.remove(module)
            _forget_lookups()
            return
    raise UsageError(f"no family named {name!r} was added with register(); added: {_names(_added) or 'none'}")


def added_modules() -> tuple[str, ...]:
    """The import names of the modules added with :func:`register`: what a spawned process (``--isolate``)
    registers again before it looks a shape up."""
    return tuple(module.__name__ for module in _added)


def _installed() -> list[ModuleType]:
    """The entry points' family modules, loaded and checked once; a plugin that cannot load is an error
    on every lookup (not a silently missing family)."""
    global _plugins
    if _plugins is None:
        found: list[ModuleType] = []
        for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            origin = f"entry point {entry.name!r} ({entry.value}) of group {ENTRY_POINT_GROUP}"
            try:
                module = entry.load()
            except Exception as error:
                raise UsageError(f"family plugin {origin} failed to load: {error}") from None
            if not isinstance(module, ModuleType):
                raise UsageError(f"family plugin {origin} names a {type(module).__name__}, not a module")
            _check(module, origin, (*BUILTIN, *found))
            found.append(module)
        _plugins = found
    return _plugins


def _names(modules: Iterable[ModuleType]) -> str:
    return ", ".join(module.NAME for module in modules)


def _check(module: ModuleType, origin: str, present: tuple[ModuleType, ...]) -> None:
    missing = [member for member in REQUIRED_MEMBERS if not hasattr(module, member)]
    if missing:
        raise UsageError(f"family module {origin} lacks {', '.join(missing)} (a family declares all of "
                         f"{', '.join(REQUIRED_MEMBERS)})")  # fmt: skip
    if not callable(module.make_family):
        raise UsageError(f"family module {origin}: make_family is a {type(module.make_family).__name__}, not callable")
    for other in present:
        if other.NAME == module.NAME:
            raise UsageError(f"family module {origin}: a family named {module.NAME!r} is registered ({other.__name__})")
        for cls in set(module.DENOISER_CLASSES) & set(other.DENOISER_CLASSES):
            raise UsageError(f"family module {origin}: denoiser class {cls!r} is run by family {other.NAME!r}")
    _check_zoo_names(module, origin, present)


def _check_zoo_names(module: ModuleType, origin: str, present: tuple[ModuleType, ...]) -> None:
    """A component or shape named like one in the zoo would replace it there for every caller."""
    from sdshape.models.shared.text_encoders import TEXT_ENCODERS
    from sdshape.models.shared.vaes import VAES

    taken = {spec.name for spec in (*TEXT_ENCODERS, *VAES)} | {s.name for m in present for s in m.COMPONENTS}
    shapes_taken = {shape.name for m in present for shape in m.SHAPES}
    for what, names, held in (("component", module.COMPONENTS, taken), ("shape", module.SHAPES, shapes_taken)):
        for clash in [item.name for item in names if item.name in held]:
            raise UsageError(f"family module {origin}: the zoo already has a {what} named {clash!r}")


def _forget_lookups() -> None:
    """The zoo's and this module's cached lookups, made before the registry changed."""
    from sdshape.models import zoo

    get_family.cache_clear()
    zoo._components.cache_clear()
    zoo._shapes.cache_clear()


def components() -> list[Any]:
    """Every family's own components (denoisers, and any text encoder or VAE only it uses)."""
    return [spec for module in registered() for spec in module.COMPONENTS]


def shapes() -> list[Any]:
    return [shape for module in registered() for shape in module.SHAPES]


def family_name_of(library_class: str) -> str:
    for module in registered():
        if library_class in module.DENOISER_CLASSES:
            return module.NAME
    known = sorted(c for module in registered() for c in module.DENOISER_CLASSES)
    raise UsageError(f"no model family runs a {library_class!r} denoiser; known: {', '.join(known)}")


@cache
def get_family(name: str) -> Family:
    for module in registered():
        if name == module.NAME:
            return module.make_family()
    raise UsageError(f"unknown model family {name!r}; choose from {_names(registered())}")


def family_of(denoiser: Any) -> Family:
    """The family that runs this denoiser spec (by its library class)."""
    return get_family(family_name_of(denoiser.library_class))
