"""Check a component config's values against the types its library class declares.

A ``--weights`` folder's ``config.json`` goes straight into a diffusers or transformers constructor, which
trusts it: ``block_out_channels: 4`` ends as ``TypeError: object of type 'int' has no len()`` deep in a
build. The constructor's own signature says what each field must be (``block_out_channels: tuple[int]``,
``sample_size: int | None``), so the check reads it from the installed library instead of keeping a second
list of fields per family, and stays right as the libraries add fields. Unknown fields pass: the libraries
ignore them with a warning.
"""

from __future__ import annotations

import inspect
import math
import re
import sys
import types
import typing
from collections.abc import Sequence
from functools import cache
from typing import Any

from sdshape.core.errors import UsageError

# Fields whose whole numbers are sizes or counts: a negative one is no architecture.
_SIZE_FIELD = re.compile(r"channels|_dim$|_dims$|size|heads|layers|^num_|width|height|groups|_length$")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value can stand for ``hint``. Hints sdshape cannot judge pass."""
    if hint is Any or hint is inspect.Parameter.empty or isinstance(hint, str | typing.TypeVar):
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return _is_int(value)
    if hint is float:
        return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if hint in (list, tuple) or origin in (list, tuple, Sequence):
        if not isinstance(value, list | tuple):
            return False
        items = [arg for arg in args if arg is not Ellipsis]
        # diffusers writes tuple[str] for any number of str (down_block_types); a fixed tuple[int, int]
        # still needs each item to be one of its types.
        return not items or all(any(_matches(item, arg) for arg in items) for item in value)
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    return True


def _hint_from_default(default: Any) -> Any:
    """The type a field without an annotation takes, read from its default (transformers' older configs)."""
    if default is inspect.Parameter.empty or default is None:
        return Any
    if isinstance(default, bool | int | float | str):
        return type(default) | None if not isinstance(default, float) else float | None
    if isinstance(default, list | tuple):
        return list | tuple
    return Any


@cache
def declared_fields(cls: type) -> dict[str, Any]:
    """Field name -> type hint, from the constructor of a diffusers model or a transformers config."""
    target = cls.__init__
    module = sys.modules.get(getattr(target, "__module__", ""), None)
    namespace: dict[str, Any] = dict(vars(module)) if module else {}
    try:
        import torch

        namespace.setdefault("torch", torch)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    fields: dict[str, Any] = {}
    for name, parameter in inspect.signature(target).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        hint = parameter.annotation
        if isinstance(hint, str):
            try:
                hint = eval(hint, namespace)  # the library's own annotation text (transformers writes strings)
            except Exception:
                hint = Any
        if hint is inspect.Parameter.empty:
            hint = _hint_from_default(parameter.default)
        fields[name] = hint
    return fields


def _describe(hint: Any) -> str:
    text = getattr(hint, "__name__", None) if not typing.get_args(hint) else None
    return text or str(hint).replace("typing.", "")


def check_config(config: dict[str, Any], cls: type, where: str) -> None:
    """Refuse, in one line naming ``where`` and the field, a value the class's constructor cannot take."""
    fields = declared_fields(cls)
    for name, value in config.items():
        if name.startswith("_") or name not in fields:
            continue
        hint = fields[name]
        # Published configs write null for fields annotated bool or int (SDXL's upcast_attention): the
        # libraries take it as their default, so it passes.
        if value is not None and not _matches(value, hint):
            raise UsageError(f"{where}: field {name!r} is {value!r}; {cls.__name__} takes {_describe(hint)}")
        numbers = value if isinstance(value, list | tuple) else [value]
        if _SIZE_FIELD.search(name) and any(_is_int(n) and n < 0 for n in numbers):
            raise UsageError(f"{where}: field {name!r} is {value!r}; a size or count cannot be negative")


def config_class(cls: type) -> type:
    """The class whose constructor takes the config: a transformers model's config class, else the model."""
    return getattr(cls, "config_class", None) or cls
