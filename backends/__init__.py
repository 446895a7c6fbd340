"""Backend registry: discovery, options, variants.

Backends are found through the entry-point group ``sdshape.backends`` (so a
separate package can add one without touching sdshape); the built-in ones are
also registered directly so a source checkout works without installing.

Each backend owns its options: it declares them (``options``, a tuple of
:class:`Option`), names its variants (``variants``: ``compile:reduce-overhead``
picks option values) and may fill device-dependent defaults and check
combinations (``configure``). This module applies those declarations the same
way for every backend, built-in or third-party; nothing outside a backend's own
module knows what its options mean.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from sdshape.backends.base import (
    PROTOCOL_CLASS_MEMBERS,
    RUNTIME_OPTIONS,
    Artifact,
    Backend,
    BackendBase,
    Option,
    PreparedRunner,
    Runner,
    artifact_of,
)
from sdshape.core.errors import UsageError, choices_error

ENTRY_POINT_GROUP = "sdshape.backends"
BUILTIN_PATHS = {
    "eager": "sdshape.backends.eager:EagerBackend",
    "compile": "sdshape.backends.torch_compile:TorchCompileBackend",
    "onnxruntime": "sdshape.backends.ort:OnnxRuntimeBackend",
    "tensorrt": "sdshape.backends.trt:TensorRTBackend",
}

__all__ = [
    "BUILTIN_PATHS",
    "ENTRY_POINT_GROUP",
    "Artifact",
    "Backend",
    "BackendBase",
    "Option",
    "PreparedRunner",
    "Runner",
    "artifact_of",
    "backend_class",
    "backend_names",
    "declared_flags",
    "get_backend",
    "resolve",
]


def _registered() -> dict[str, str]:
    """name -> "module:Class" for every backend: the built-ins, then the entry points' additions."""
    found = dict(BUILTIN_PATHS)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.value)
    return found


def backend_names() -> list[str]:
    return list(_registered())


def origin(name: str) -> str:
    """Where a backend comes from, as an entry point value."""
    return _registered().get(name, "")


def backend_class(name: str) -> type:
    """The class of a registered backend; unknown or unloadable names are usage errors."""
    registry = _registered()
    if name not in registry:
        raise choices_error("backend", name, list(registry))
    module_name, _, attribute = registry[name].partition(":")
    try:
        import importlib

        target = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except Exception as error:
        raise UsageError(f"backend {name!r} is registered but failed to load: {error}") from None
    if not isinstance(target, type):
        raise UsageError(f"backend {name!r} is registered as {registry[name]}, which is not a class")
    missing = [member for member in PROTOCOL_CLASS_MEMBERS if not hasattr(target, member)]
    if missing:
        raise UsageError(
            f"backend {name!r} ({registry[name]}) lacks {', '.join(missing)} of the backend protocol; "
            "subclass sdshape.backends.BackendBase for their defaults"
        )
    return target


def declared_options(cls: type) -> tuple[Option, ...]:
    return tuple(cls.options)


def declared_variants(cls: type) -> dict[str, dict[str, Any]]:
    return dict(cls.variants)


def declared_flags() -> list[tuple[str, Option]]:
    """(backend name, option) for every option a registered backend exposes as a run-wide flag.

    A flag's value reaches its own backend only. Two backends declaring one flag are refused here,
    when the flags are registered, naming both. A backend that fails to load contributes none
    (``sdshape backends`` says why)."""
    flags: list[tuple[str, Option]] = []
    owner: dict[str, str] = {}
    for name in backend_names():
        try:
            cls = backend_class(name)
        except UsageError:
            continue
        for option in declared_options(cls):
            if not option.flag:
                continue
            if option.flag in owner:
                raise UsageError(
                    f"backends {owner[option.flag]!r} and {name!r} both declare {option.flag}: "
                    f"one of them must name it apart (e.g. --{name}-{option.name.replace('_', '-')})"
                )
            owner[option.flag] = name
            flags.append((name, option))
    return flags


def _configured(cls: type, name: str, options: dict[str, Any], device: str) -> dict[str, Any]:
    return dict(cls.configure(dict(options), device))


def resolve(label: str, flags: dict[str, Any], device: str) -> tuple[str, str, dict[str, Any]]:
    """(canonical label, backend name, options) for one entry of ``--backend``.

    Options start from the backend's declared defaults; this backend's run-wide flags
    (``flags``: option name -> value, None when not given) apply next, then the
    variant after a colon, then the backend's ``configure`` for the device. The
    label names the variant that gives these options, and drops it when they are
    the defaults, so result ids stay short and stable (``compile``,
    ``compile:reduce-overhead``).
    """
    name, _, variant = label.partition(":")
    cls = backend_class(name)
    declared = declared_options(cls)
    variants = declared_variants(cls)
    defaults = {option.name: option.default for option in declared}
    options = dict(defaults)
    for option in declared:
        if flags.get(option.name) is not None:
            options[option.name] = option.parse(flags[option.name], name)
    if variant:
        if variant not in variants:
            if not variants:
                raise UsageError(f"backend {name!r} takes no variant, got {label!r}")
            raise choices_error(f"{name} variant", variant, list(variants))
        options.update(variants[variant])
    by_name = {option.name: option for option in declared}
    options = {key: by_name[key].parse(value, name) if key in by_name else value for key, value in options.items()}
    options = _configured(cls, name, options, device)
    if options == _configured(cls, name, defaults, device):
        return name, name, options
    for candidate, values in variants.items():
        try:
            matches = options == _configured(cls, name, {**defaults, **values}, device)
        except UsageError:  # a variant that cannot run on this device names nothing here
            continue
        if matches:
            return f"{name}:{candidate}", name, options
    changed = ",".join(f"{key}={value}" for key, value in sorted(options.items()) if defaults.get(key) != value)
    return f"{name}:{changed}", name, options


def recorded(options: dict[str, Any]) -> dict[str, Any]:
    """A backend's options as a result records them (run-time settings left out)."""
    return {key: value for key, value in options.items() if key not in RUNTIME_OPTIONS}


def get_backend(name: str, options: dict[str, Any] | None = None) -> Backend:
    """Instantiate a backend by name with its resolved options (by default, its declared defaults)."""
    cls = backend_class(name)
    if options is None:
        options = {option.name: option.default for option in declared_options(cls)}
    backend = cls(dict(options))
    if not isinstance(backend, Backend):
        raise UsageError(f"backend {name!r} does not implement the sdshape backend protocol ({Backend.__doc__})")
    return backend
