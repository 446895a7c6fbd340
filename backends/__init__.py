"""Backend registry.

Backends are found through the entry-point group ``sdshape.backends`` (so a
separate package can add one without touching sdshape); the built-in ones are
also registered directly so a source checkout works without installing.
A backend class may take a :class:`BackendOptions` argument; one that takes
none is constructed without it.
"""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points

from sdshape.backends.base import Artifact, Backend, BackendOptions, PreparedRunner, Runner, artifact_of
from sdshape.backends.eager import EagerBackend
from sdshape.backends.ort import OnnxRuntimeBackend
from sdshape.backends.torch_compile import TorchCompileBackend
from sdshape.backends.trt import TensorRTBackend

from sdshape.errors import UsageError, choices_error

ENTRY_POINT_GROUP = "sdshape.backends"
BUILTIN: dict[str, type] = {
    "eager": EagerBackend,
    "compile": TorchCompileBackend,
    "onnxruntime": OnnxRuntimeBackend,
    "tensorrt": TensorRTBackend,
}

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "Artifact",
    "Backend",
    "BackendOptions",
    "PreparedRunner",
    "Runner",
    "artifact_of",
    "backend_names",
    "get_backend",
]


def _discovered() -> dict[str, object]:
    found: dict[str, object] = dict(BUILTIN)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in BUILTIN:
            found[entry.name] = entry
    return found


def backend_names() -> list[str]:
    return list(_discovered())


def get_backend(name: str, options: BackendOptions | None = None) -> Backend:
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
    takes_options = len(inspect.signature(target).parameters) > 0
    backend = target(options or BackendOptions()) if takes_options else target()
    if not isinstance(backend, Backend):
        raise UsageError(f"backend {name!r} does not implement the sdshape backend protocol (name, available, prepare)")
    return backend
