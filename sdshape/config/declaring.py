"""How a run option is declared: the harnesses that take it, the defaults that depend on the device, and
:func:`option`, which makes one :class:`~sdshape.config.options.RunOptions` field carry its flag, help,
bounds and where it applies (so every parser and the plan derive from that one field)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any

from sdshape.core.bounds import Bounds

RUN, BENCH, SHAPES = "run", "bench", "shapes"  # where an option applies: the harnesses that measure
FIT, INSPECT = "fit", "inspect"  # the static model's commands: they take some of the same options
HARNESSES = (RUN, BENCH, SHAPES)
MODELLED = (*HARNESSES, FIT, INSPECT)


@dataclass(frozen=True)
class Elsewhere:
    """How a command that only models a run offers one of its options, where that legitimately differs:
    ``fit`` judges every residency policy unless told one, prices in fp16 on any card, and knows the time
    model's backends only; ``inspect`` counts at the shape's own settings. Its bounds stay the option's."""

    help: str
    default: Any = None


@dataclass(frozen=True)
class DeviceDefaults:
    """What a run does when a flag is left out, per device kind (the help text quotes these)."""

    precision: str
    steps: int
    rounds: int | None  # None: until the median is stable (``--rounds auto``)
    warmup: int
    resolution_cap: int | None  # None: the shape's native resolution
    profile: bool


GPU_DEFAULTS = DeviceDefaults(precision="fp16", steps=50, rounds=None, warmup=2, resolution_cap=None, profile=True)
# Sized so `sdshape run` with no flags (SD 1.5 at 256x256) prints its table in about 2 minutes on 2 CPU cores.
CPU_DEFAULTS = DeviceDefaults(precision="fp32", steps=3, rounds=3, warmup=1, resolution_cap=256, profile=False)
DEFAULT_BACKEND = "eager"
DEFAULT_SHAPE = "sd15"


def option(
    flag: str,
    help: str,
    default: Any = None,
    *,
    kind: Bounds | None = None,
    action: Any = None,
    aliases: tuple[str, ...] = (),
    where: tuple[str, ...] = (RUN, BENCH),
    metavar: str | None = None,
    const: Any = None,
    elsewhere: Mapping[str, Elsewhere] | None = None,
    choices: tuple[str, ...] = (),
) -> Any:
    """A :class:`~sdshape.config.options.RunOptions` field: its default plus what a parser needs to offer it
    (``const``: the value of the flag given bare, as ``--store`` alone names the default store; ``elsewhere``:
    the commands in ``where`` that offer it with their own help and default; ``choices``: the values a run
    takes, checked with the bounds by ``RunOptions.check``)."""
    spec = {"flag": flag, "help": help, "kind": kind, "action": action, "aliases": aliases, "where": where}
    parsing = {"metavar": metavar, "const": const, "elsewhere": elsewhere or {}, "choices": choices}
    return field(default=default, metadata={**spec, **parsing})


def _shown(value: Any) -> str:
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def device_default_text(name: str) -> str:
    """What the help says a device-dependent option defaults to."""
    return f"default {_shown(getattr(GPU_DEFAULTS, name))} on a GPU, {_shown(getattr(CPU_DEFAULTS, name))} on the CPU"


def declared_help(f: Field, harness: str) -> str:
    """The option's help as ``harness`` offers it: its own where it differs (:class:`Elsewhere`), else the
    option's, with its default (the device's, for the options :class:`DeviceDefaults` names)."""
    spec = f.metadata
    if harness in spec["elsewhere"]:
        return spec["elsewhere"][harness].help
    if f.name in {d.name for d in fields(DeviceDefaults)}:
        return f"{spec['help']} ({device_default_text(f.name)})"
    if f.default is not None and not isinstance(f.default, bool) and spec["action"] is None:
        return f"{spec['help']} (default {f.default})"
    return spec["help"]


def declared_default(f: Field, harness: str) -> Any:
    """The option's default as ``harness`` offers it (its own where it differs: :class:`Elsewhere`)."""
    differs = f.metadata["elsewhere"].get(harness)
    return f.default if differs is None else differs.default
