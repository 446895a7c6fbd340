"""torch.compile: each stage module compiled by Inductor, with ``--compile-mode``.

``default``, ``max-autotune`` and ``reduce-overhead`` (CUDA graphs on the GPU).
Compilation is lazy in torch, so ``prepare`` runs one call on the example
inputs and times it: that is the build time, reported apart from run time.
Under CUDA graphs a compiled function's outputs live in a pool that the next
replay overwrites, so this backend clones them (a small copy, counted in the
run time) before the loop or the next stage holds on to them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import torch

from sdshape.backends.base import Artifact, BackendBase, Option, PreparedRunner, Runner
from sdshape.backends.graphs import clone_outputs

MODES = ("default", "max-autotune", "reduce-overhead")
GRAPH_MODES = ("max-autotune", "reduce-overhead")


class TorchCompileBackend(BackendBase):
    name = "compile"
    options = (
        Option(
            "compile_mode",
            "torch.compile mode (reduce-overhead: CUDA graphs on a GPU)",
            choices=MODES,
            default="default",
            flag="--compile-mode",
        ),
        Option(
            "channels_last", "convert the module to the channels_last memory format first", default=False, kind=bool
        ),
        Option("fuse_qkv", "diffusers' fuse_qkv_projections on the UNet and the VAE first", default=False, kind=bool),
    )
    variants: ClassVar[dict[str, dict[str, Any]]] = {
        **{mode: {"compile_mode": mode} for mode in MODES},
        # As diffusers' speed-up guide has torch.compile users run it: max-autotune (with CUDA graphs),
        # channels_last, fused QKV projections.
        "tuned": {"compile_mode": "max-autotune", "channels_last": True, "fuse_qkv": True},
    }

    def available(self) -> tuple[bool, str | None]:
        if not hasattr(torch, "compile"):
            return False, f"torch {torch.__version__} has no torch.compile"
        return True, None

    def prepare(
        self,
        module: torch.nn.Module,
        example_inputs: tuple[torch.Tensor, ...],
        precision: str,
        device: torch.device,
        cache: Path | None,
    ) -> Runner:
        mode = self.values["compile_mode"]
        notes = [f"mode {mode}", "build_s is the first call (tracing + Inductor); its on-disk caches can shorten it"]
        if self.values["fuse_qkv"]:
            fused = [part for part in module.children() if hasattr(part, "fuse_qkv_projections")]
            for part in fused:
                part.fuse_qkv_projections()
            notes.append(f"fused QKV projections in {len(fused)} module(s)" if fused else "no QKV projections to fuse")
        if self.values["channels_last"]:
            module = module.to(memory_format=torch.channels_last)
            notes.append("channels_last memory format")
        compiled = torch.compile(module, mode=mode, dynamic=False)
        # Both modes replay CUDA graphs on a GPU (max-autotune adds them to its autotuning): the graph's
        # output pool is overwritten by the next replay, so outputs are cloned.
        cuda_graphs = mode in GRAPH_MODES and device.type == "cuda"

        def run(*inputs: torch.Tensor) -> Any:
            with torch.inference_mode():
                if cuda_graphs:
                    torch.compiler.cudagraph_mark_step_begin()
                    return clone_outputs(compiled(*inputs))
                return compiled(*inputs)

        start = time.perf_counter()
        run(*example_inputs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        build_s = time.perf_counter() - start
        return PreparedRunner(run, Artifact("built", build_s, None, notes), close=_reset)


def _reset() -> None:
    """Drop Dynamo's code cache (and with it Inductor's CUDA-graph pools), which hold the compiled
    module's memory after the session has let go of it."""
    torch._dynamo.reset()
