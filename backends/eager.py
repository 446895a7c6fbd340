"""Eager PyTorch: the module as it is, under inference mode. The reference for every other backend."""

from __future__ import annotations

from pathlib import Path

import torch
from sdshape.backends.base import Runner


class EagerBackend:
    name = "eager"

    def available(self) -> tuple[bool, str | None]:
        return True, None

    def prepare(
        self,
        module: torch.nn.Module,
        example_inputs: tuple[torch.Tensor, ...],
        precision: str,
        device: torch.device,
        cache: Path | None,
    ) -> Runner:
        def run(*inputs: torch.Tensor):
            with torch.inference_mode():
                return module(*inputs)

        return run
