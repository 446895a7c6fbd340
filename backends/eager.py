"""Eager PyTorch: the module as it is, under inference mode. The reference for every other backend.

``eager:cudagraph`` replays each stage module from a CUDA graph (``backends.graphs``):
the same kernels, without Python's launches between them; GPU only.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from sdshape.backends.base import Artifact, BackendBase, Option, PreparedRunner, Runner


class EagerBackend(BackendBase):
    name = "eager"
    options = (
        Option(
            "cuda_graph",
            "capture each stage module's call in a CUDA graph and replay it (GPU only)",
            default=False,
            kind=bool,
        ),
    )
    variants: ClassVar[dict[str, dict[str, Any]]] = {"cudagraph": {"cuda_graph": True}}

    @staticmethod
    def configure(options: dict[str, Any], device: str) -> dict[str, Any]:
        if options.get("cuda_graph") and device != "cuda":
            from sdshape.core.errors import UsageError

            raise UsageError(
                "eager:cudagraph needs --device cuda: a CUDA graph captures GPU kernels, and on the CPU "
                "there are none to capture"
            )
        return options

    def available(self) -> tuple[bool, str | None]:
        return True, None

    def prepare(
        self,
        module: torch.nn.Module,
        example_inputs: tuple[torch.Tensor, ...],
        precision: str,
        device: torch.device,
        cache: Any,
    ) -> Runner:
        def run(*inputs: torch.Tensor):
            with torch.inference_mode():
                return module(*inputs)

        if not self.values["cuda_graph"]:
            return run
        from sdshape.backends.graphs import GraphRunner

        graphed = GraphRunner(module, example_inputs, device)
        notes = [
            "CUDA graph captured after warm-up calls on a side stream; build_s is the capture",
            "inputs copied into static buffers and outputs cloned on every replay (counted in the rounds)",
        ]
        return PreparedRunner(graphed, Artifact("built", graphed.capture_s, None, notes), close=graphed.close)
