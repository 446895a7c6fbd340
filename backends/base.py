"""The backend protocol.

A backend turns a stage module (``sdshape.models.stages``: text encoder, one UNet
step, VAE decode) into a *runner*: a callable that takes the same tensors as the
module and returns torch tensors on the device. The denoising loop stays in
Python and calls the UNet runner once per step, so every backend is measured
under the same scheduler code.

Build-time work (compile, export, engine build) happens in ``prepare`` and is
timed there, never inside a measured round. A runner may carry an
:class:`Artifact` saying whether that work was done now or reused from the cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

Runner = Callable[..., Any]


# Options a backend receives from the run, not from the user; never part of its recorded options.
# memory_budget_bytes: set under --vram-cap, for backends with an allocator of their own (ONNX Runtime).
RUNTIME_OPTIONS = ("memory_budget_bytes",)


@dataclass(frozen=True, kw_only=True)
class Option:
    """One option a backend declares; its values are the backend's to read and to validate.

    ``name`` is its key in the backend's options (and in a result's
    ``backend_options``). ``flag``, when given, is a command-line flag of
    ``sdshape run`` and ``pytest bench/`` that sets it for the whole run; a
    variant (``compile:reduce-overhead``) overrides it for one entry.
    """

    name: str = field(kw_only=False)
    help: str = field(kw_only=False)
    choices: tuple[str, ...] | None = None
    default: Any = None
    flag: str | None = None
    kind: type = str  # str, bool, int or float

    def parse(self, value: Any, backend: str) -> Any:
        """The value as this option holds it; anything else is a usage error naming the choices."""
        from sdshape.core.errors import UsageError, choices_error

        if value is None:
            return None
        if self.kind is bool and isinstance(value, str):
            lowered = value.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise UsageError(f"{backend} option {self.name}: expected true or false, got {value!r}")
            value = lowered in ("true", "1", "yes")
        elif self.kind in (int, float) and isinstance(value, str):
            try:
                value = self.kind(value)
            except ValueError:
                raise UsageError(f"{backend} option {self.name}: expected a number, got {value!r}") from None
        if self.choices is not None and value not in self.choices:
            raise choices_error(self.name.replace("_", " "), value, self.choices)
        return value

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "help": self.help,
            "choices": list(self.choices) if self.choices else None,
            "default": self.default,
            "flag": self.flag,
        }


@dataclass
class Artifact:
    """What preparing a stage cost.

    ``cache``: built | reused | none (eager: nothing to build). ``build_s``: build
    time spent in this run (0 when reused); ``cached_build_s``: what a reused
    artifact cost when it was built. ``prepare_s`` (set by the session): the
    whole ``prepare`` call, loading and session creation included.
    """

    cache: str = "none"
    build_s: float = 0.0
    path: str | None = None
    notes: list[str] = field(default_factory=list)
    cached_build_s: float | None = None
    prepare_s: float | None = None
    weight_bytes: int | None = None  # weights the runner holds itself (ONNX Runtime's copy), when it holds any
    # Files the runner maps its weights from (ONNX Runtime's external data): pages of them never touched
    # are not in memory, which the host memory rule must know (``sdshape.models.mapped_weights``). Not written.
    weight_files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record.pop("weight_files")
        return record


class PreparedRunner:
    """A runner plus the :class:`Artifact` record of how it was made, and what closing it releases.

    ``close`` runs when the session ends, before the next backend's baseline is
    read: state a backend keeps outside the runner (torch.compile's code cache and
    CUDA-graph pools) must not count against the next backend's memory.
    """

    def __init__(self, run: Runner, artifact: Artifact, close: Callable[[], None] | None = None):
        self._run = run
        self.artifact = artifact
        self._close = close

    def __call__(self, *inputs: torch.Tensor) -> Any:
        return self._run(*inputs)

    def close(self) -> None:
        if self._close is not None:
            self._close()


class FailedRunner:
    """Stands in for a runner whose preparation failed: each call raises, so the stages that use it
    become error rows with the reason, and the others are still measured."""

    def __init__(self, message: str):
        self.message = message
        self.artifact = Artifact("failed", notes=[message])

    def __call__(self, *inputs: torch.Tensor) -> Any:
        raise RuntimeError(self.message)


def artifact_of(runner: Runner) -> Artifact:
    return getattr(runner, "artifact", None) or Artifact()


@runtime_checkable
class Backend(Protocol):
    """Everything the core reads from a backend; register one under the entry-point group ``sdshape.backends``.

    Subclass :class:`BackendBase` for the defaults of everything but ``name``, ``available`` and
    ``prepare``. The registry (``sdshape.backends``) reads the class attributes; the session reads
    ``keeps_module`` and calls ``available``, ``prepare`` and the runner's ``close``.

    - ``name``: the registered name, as results record it.
    - ``options``: the :class:`Option` s it takes. Their ``default`` is the only place a default is
      written; the instance gets every option's value (``values``).
    - ``variants``: variant name -> option values, chosen as ``name:variant`` (``compile:tuned``).
    - ``configure(options, device) -> options``: device-dependent defaults and checks across options
      (a staticmethod); raise :class:`~sdshape.core.errors.UsageError` for a combination that cannot run.
    - ``keeps_module``: False when the prepared runner holds its own copy of the weights (ONNX Runtime,
      TensorRT), so the session frees the torch module and counts the artifact's weights instead.
    - ``available()``: whether it can run here, and if not, why (missing package, no GPU).
    - ``prepare(module, example_inputs, precision, device, cache)``: a runner for one stage module. The
      module takes and returns plain tensors; its ``returns_tuple`` says whether the output is a tuple
      (the runner keeps that structure). What the backend calls the graph is its own map (ONNX Runtime's
      optimizer types: ``backends/ort_optimize.py``).
    """

    name: str
    options: tuple[Option, ...]
    variants: dict[str, dict[str, Any]]
    keeps_module: bool
    values: dict[str, Any]

    @staticmethod
    def configure(options: dict[str, Any], device: str) -> dict[str, Any]: ...

    def available(self) -> tuple[bool, str | None]: ...

    def prepare(
        self,
        module: torch.nn.Module,
        example_inputs: tuple[torch.Tensor, ...],
        precision: str,
        device: torch.device,
        cache: Any,
    ) -> Runner:
        """Return a runner for ``module``. ``cache`` is an :class:`backends.cache.ArtifactSlot` (or None)."""
        ...


PROTOCOL_CLASS_MEMBERS = ("name", "options", "variants", "keeps_module", "configure", "available", "prepare")


class BackendBase:
    """The defaults of :class:`Backend`: no options, no variants, the module kept, nothing to configure."""

    name: ClassVar[str]
    options: ClassVar[tuple[Option, ...]] = ()
    variants: ClassVar[dict[str, dict[str, Any]]] = {}
    keeps_module: ClassVar[bool] = True

    def __init__(self, options: dict[str, Any] | None = None):
        """``options``: the resolved values; any left out take the declared default."""
        self.values = {option.name: option.default for option in type(self).options} | dict(options or {})

    @staticmethod
    def configure(options: dict[str, Any], device: str) -> dict[str, Any]:
        return options
