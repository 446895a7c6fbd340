"""CUDA-graph replay of a stage module: the GPU's work without Python's launches (``eager:cudagraph``).

At batch 1 on a fast GPU, eager PyTorch is host-bound: the GPU waits for
Python to launch each kernel. Capturing one call into a CUDA graph and
replaying it launches the whole call at once, so the measured time is the
GPU's. Nothing is fused or retuned (that is ``compile:reduce-overhead``'s
job), so the difference between the two is what compilation adds.

As PyTorch's documentation prescribes: a few warm-up calls on a side stream
(so lazy initialisation and cuDNN's algorithm search happen outside the graph),
then one captured call on static input buffers. Each replay copies the call's
inputs into those buffers and clones the outputs, which the next replay
overwrites. For the UNet the graph is one denoising step, replayed per step;
the scheduler stays outside it, in Python, as for every backend.
"""

from __future__ import annotations

import time
from typing import Any

import torch

WARMUP_CALLS = 3


def clone_outputs(output: Any) -> Any:
    if isinstance(output, tuple):
        return tuple(t.clone() for t in output)
    return output.clone()


class GraphRunner:
    """One captured call of ``call`` on static copies of ``example_inputs``, replayed per call."""

    def __init__(self, call: Any, example_inputs: tuple[torch.Tensor, ...], device: torch.device, cuda: Any = None):
        cuda = cuda or torch.cuda  # a stand-in lets the tests check the logic without a GPU
        start = time.perf_counter()
        self.static = [t.detach().clone() for t in example_inputs]
        side = cuda.Stream(device)
        side.wait_stream(cuda.current_stream(device))
        with cuda.stream(side), torch.inference_mode():
            for _ in range(WARMUP_CALLS):
                call(*self.static)
        cuda.current_stream(device).wait_stream(side)
        self.graph = cuda.CUDAGraph()
        with torch.inference_mode(), cuda.graph(self.graph):
            self.output = call(*self.static)
        cuda.synchronize(device)
        self.capture_s = time.perf_counter() - start

    def __call__(self, *inputs: torch.Tensor) -> Any:
        for buffer, value in zip(self.static, inputs, strict=True):
            if buffer.data_ptr() != value.data_ptr():
                buffer.copy_(value)
        self.graph.replay()
        return clone_outputs(self.output)

    def close(self) -> None:
        """Let go of the graph and its memory pool."""
        self.graph = None
        self.output = None
        self.static = []
