"""The backend protocol.

A backend turns a stage module (``sdshape.modules``: text encoder, one UNet
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
from typing import Any, Protocol, runtime_checkable

import torch

Runner = Callable[..., Any]


@dataclass(frozen=True)
class BackendOptions:
    """Backend-specific choices from the command line; a backend reads the ones it knows."""

    compile_mode: str = "default"
    ort_provider: str | None = None  # None: cuda on a GPU, cpu on the CPU
    gpu_mem_limit: int | None = None  # bytes; set by --vram-cap for backends with their own allocator


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def artifact_of(runner: Runner) -> Artifact:
    return getattr(runner, "artifact", None) or Artifact()


@runtime_checkable
class Backend(Protocol):
    """Implement these to add a backend; register it under the entry-point group ``sdshape.backends``."""

    name: str

    def available(self) -> tuple[bool, str | None]:
        """Whether this backend can run here, and if not, why (missing package, no GPU)."""
        ...

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
