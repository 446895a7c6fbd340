"""Backend registry.

Backends are found through the entry-point group ``sdshape.backends`` (so a
separate package can add one without touching sdshape); the built-in ones are
also registered directly so a source checkout works without installing.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from backends.base import Backend, Runner
from backends.eager import EagerBackend
from sdshape.errors import UsageError, choices_error

ENTRY_POINT_GROUP = "sdshape.backends"
BUILTIN: dict[str, type] = {"eager": EagerBackend}

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "Backend", "Runner", "backend_names", "get_backend"]


def _discovered() -> dict[str, object]:
    found: dict[str, object] = dict(BUILTIN)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in BUILTIN:
            found[entry.name] = entry
    return found


def backend_names() -> list[str]:
    return list(_discovered())


def get_backend(name: str) -> Backend:
    """Instantiate a backend by name; unknown or unloadable names are usage errors."""
    registry = _discovered()
    if name not in registry:
        raise choices_error("backend", name, list(registry))
    target = registry[name]
    if not isinstance(target, type):
        try:
            target = target.load()  # an EntryPoint
        except Exception as error:
            raise UsageError(f"backend {name!r} is registered but failed to load: {error}") from None
    backend = target()
    if not isinstance(backend, Backend):
        raise UsageError(f"backend {name!r} does not implement the sdshape backend protocol (name, available, prepare)")
    return backend
