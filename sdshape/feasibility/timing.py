"""Seconds a traced stage takes on a catalog card: a per-op roofline, waves of tiles over the SMs, and the
host's launch time kept apart.

Per op: a tensor-core op (GEMM, convolution, fused attention) takes the longer of its FLOPs over the
card's dense fp16 rate and its bytes over the bandwidth; a memory-bound op (norms, activations, adds)
takes its bytes over the bandwidth. A tensor-core op splits into output tiles that run in waves of one
tile per SM: 40 tiles on a 128-SM card use 31% of it. Each architecture achieves a fraction of the
datasheet rate (``ArchEfficiency.factor``), calibrated on measured figures (see
:mod:`sdshape.feasibility.calibration`). fp32 compute (an upcast VAE) runs at half the fp16 tensor rate:
cuDNN takes TF32 for convolutions by default, which runs at half the fp16 rate on Ampere and later.

Host time: eager PyTorch pays a host cost per kernel launch, which overlaps the GPU's work; a step takes
the longer of the two, and the report says which bound it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdshape.feasibility.catalog import GPU
from sdshape.feasibility.trace import Trace


@dataclass(frozen=True)
class ArchEfficiency:
    """The factor on both datasheet rates (tensor and bandwidth) an architecture's kernels reach, and where
    it came from: the figures on file are whole-loop times, which cannot tell the two rates apart."""

    factor: float
    source: str


@dataclass(frozen=True)
class StageTime:
    gpu_s: float
    host_s: float

    @property
    def seconds(self) -> float:
        return max(self.gpu_s, self.host_s)

    @property
    def bound(self) -> str:
        return "host" if self.host_s > self.gpu_s else "gpu"


def wave_fraction(tiles: int, sms: int) -> float:
    """The share of the card a kernel of ``tiles`` tiles keeps busy, over all its waves."""
    if tiles <= 0:
        return 1.0
    waves = -(-tiles // sms)
    return tiles / (waves * sms)


def gpu_seconds(trace: Trace, gpu: GPU, efficiency: ArchEfficiency, fp32: bool = False) -> float:
    """Kernel time of one traced call on ``gpu``, summed op by op."""
    if gpu.sms is None:
        raise ValueError(f"{gpu.name}: the catalog entry has no 'sms' (multiprocessor count); the model needs it")
    memo = trace.__dict__.setdefault("_seconds", {})  # fit projects one trace under many policies and formats
    key = (gpu, efficiency.factor, fp32)
    if key not in memo:
        memo[key] = _gpu_seconds(trace, gpu, efficiency, fp32)
    return memo[key]


def _gpu_seconds(trace: Trace, gpu: GPU, efficiency: ArchEfficiency, fp32: bool) -> float:
    rate = gpu.tensor_flops * efficiency.factor * (0.5 if fp32 else 1.0)
    bandwidth = gpu.bandwidth_gbs * 1e9 * efficiency.factor
    total = 0.0
    for op in trace.ops:
        memory_s = op.bytes_moved / bandwidth
        if op.kind == "memory" or not op.flops:
            total += memory_s
            continue
        busy = wave_fraction(op.tiles, gpu.sms) * op.padding
        total += max(op.flops / (rate * busy), memory_s)
    return total


def stage_time(
    trace: Trace, gpu: GPU, efficiency: ArchEfficiency, host_s_per_launch: float, fp32: bool = False
) -> StageTime:
    return StageTime(gpu_seconds(trace, gpu, efficiency, fp32), trace.launches * host_s_per_launch)
