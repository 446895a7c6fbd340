"""One profiled round per stage: how busy the GPU was, and where its time went, by kernel class.

A stage's wall time on a fast GPU can be mostly Python: eager PyTorch at batch 1
launches kernels more slowly than the GPU runs them, so the GPU waits (the H100
ran SD 1.5's UNet step in 7.5 ms under CUDA graphs and 33-48 ms in eager). One
round under ``torch.profiler`` (outside the timed rounds) measures it:

- ``busy_fraction``: the union of the GPU's kernel and copy intervals over the
  timed rounds' median wall time; below 0.8 the stage is ``host_bound``: its
  time says more about the host than about the model;
- ``by_class``: kernel seconds per stage call in each class (``classify``):
  attention, convolution, GEMM, normalization, elementwise, memory, other;
- ``top``: the ten kernels with the most total time.

On the CPU there is no device to wait: the top-level ATen ops' CPU time is
split by the same classes, and ``busy_fraction`` is null with the reason.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdshape.result.records import Kernels

CLASSES = ("attention", "convolution", "gemm", "normalization", "elementwise", "memory", "other")
HOST_BOUND_BELOW = 0.8

# Substrings of kernel (and ATen op) names, lower-cased, checked in this order: a flash-attention kernel
# is built from CUTLASS, a cuDNN kernel may be a convolution or a norm, an implicit GEMM is a convolution.
PATTERNS = (
    ("attention", ("flash", "fmha", "attention", "attn", "sdpa", "softmax", "mem_eff")),
    (
        "normalization",
        (
            "group_norm",
            "groupnorm",
            "layer_norm",
            "layernorm",
            "rms_norm",
            "batch_norm",
            "batchnorm",
            "rowwisemoments",
            "computefusedparams",
            "native_norm",
        ),
    ),
    ("convolution", ("conv", "fprop", "dgrad", "wgrad", "implicit_gemm", "implicit_convolve", "winograd", "cudnn")),
    (
        "gemm",
        (
            "gemm",
            "cutlass",
            "cublas",
            "matmul",
            "nvjet",
            "aten::mm",
            "aten::addmm",
            "aten::bmm",
            "aten::linear",
            "aten.mm",
            "aten.addmm",
            "aten.bmm",
            "aten.baddbmm",
            "triton_tem",
        ),
    ),
    ("memory", ("memcpy", "memset", "copy", "aten::cat", "aten::contiguous", "aten::to", "cat_", "transpose")),
    (
        "elementwise",
        (
            "elementwise",
            "vectorized",
            "unrolled",
            "triton_poi",
            "silu",
            "gelu",
            "aten::add",
            "aten::mul",
            "aten::div",
            "aten::sub",
            "aten::silu",
            "aten::gelu",
            "pointwise",
            "fill",
        ),
    ),
)


def classify(name: str) -> str:
    """The class of a CUDA kernel or an ATen op, from its name."""
    lowered = name.lower()
    for kind, needles in PATTERNS:
        if any(needle in lowered for needle in needles):
            return kind
    return "other"


def busy_union_s(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one interval (overlapping kernels on several streams count once)."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def summarize_kernels(
    kernels: list[tuple[str, float, float]], timed_median_s: float | None, profiled_wall_s: float
) -> dict[str, Any]:
    """``kernels``: (name, start_s, end_s) of every GPU kernel, copy and memset in one stage call."""
    by_class: dict[str, float] = dict.fromkeys(CLASSES, 0.0)
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for name, start, end in kernels:
        by_class[classify(name)] += end - start
        totals[name][0] += end - start
        totals[name][1] += 1
    busy = busy_union_s([(start, end) for _, start, end in kernels])
    wall = timed_median_s or profiled_wall_s
    fraction = min(1.0, busy / wall) if wall > 0 else None
    return {
        "source": "CUDA kernels, copies and memsets (torch.profiler)",
        "busy_fraction": fraction,
        "busy_note": None,
        "busy_s": busy,
        "wall_s": wall,
        "kernel_s": sum(by_class.values()),
        "by_class": by_class,
        "top": _top(totals),
        "host_bound": fraction is not None and fraction < HOST_BOUND_BELOW,
    }


def summarize_cpu_ops(ops: list[tuple[str, float]], timed_median_s: float | None) -> dict[str, Any]:
    """``ops``: (name, total seconds) of every top-level ATen op in one stage call on the CPU."""
    by_class: dict[str, float] = dict.fromkeys(CLASSES, 0.0)
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for name, seconds in ops:
        by_class[classify(name)] += seconds
        totals[name][0] += seconds
        totals[name][1] += 1
    return {
        "source": "top-level ATen ops' CPU time (torch.profiler)",
        "busy_fraction": None,
        "busy_note": "on the CPU there is no device that can wait for the host: busy fraction is a GPU measure",
        "busy_s": None,
        "wall_s": timed_median_s,
        "kernel_s": sum(by_class.values()),
        "by_class": by_class,
        "top": _top(totals),
        "host_bound": None,
    }


def _top(totals: dict[str, list[float]], count: int = 10) -> list[dict[str, Any]]:
    ranked = sorted(totals.items(), key=lambda item: -item[1][0])[:count]
    return [{"name": name[:200], "class": classify(name), "total_s": s, "calls": int(n)} for name, (s, n) in ranked]


def class_shares(kernels: Kernels | None) -> dict[str, float] | None:
    """Each class's share of the stage's kernel (or op) time."""
    if kernels is None or not kernels.kernel_s:
        return None
    return {kind: seconds / kernels.kernel_s for kind, seconds in kernels.by_class.items()}


def profile_round(run: Any, device: Any, timed_median_s: float | None) -> dict[str, Any]:
    """Run ``run()`` once under torch.profiler and summarize it (kernels on a GPU, ATen ops on the CPU)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from sdshape.core.quiet import filtered_native_stderr

    on_gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    if on_gpu:
        torch.cuda.synchronize(device)
    with filtered_native_stderr(), profile(activities=activities) as profiler:
        start = time.perf_counter()
        run()
        if on_gpu:
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - start
    events = profiler.events()
    if on_gpu:
        kernels = [
            (e.name, e.time_range.start / 1e6, e.time_range.end / 1e6)
            for e in events
            if getattr(e, "device_type", None) is not None and e.device_type.name == "CUDA"
        ]
        return summarize_kernels(kernels, timed_median_s, wall)
    top_level = [(e.name, e.cpu_time_total / 1e6) for e in events if e.cpu_parent is None and e.name.startswith("aten")]
    return summarize_cpu_ops(top_level, timed_median_s)
