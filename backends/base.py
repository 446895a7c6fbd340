"""The backend protocol.

A backend turns a stage module (``sdshape.modules``: text encoder, one UNet
step, VAE decode) into a *runner*: a callable that takes the same tensors as the
module and returns torch tensors on the device. The denoising loop stays in
Python and calls the UNet runner once per step, so every backend is measured
under the same scheduler code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

Runner = Callable[..., Any]


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
        cache: Path | None,
    ) -> Runner:
        """Return a runner for ``module``; build-time work (compile, export, engine) happens here."""
        ...
