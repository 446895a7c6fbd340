"""The reference workload: fixed operations measured once per run, beside the model (a "canary").

When a timeline steps at a driver upgrade, the model's times alone cannot say whether the machine or
the library changed. Each run therefore also measures operations that no sdshape code touches: a dense
GEMM of a fixed size (TFLOP/s), a device-to-device copy (GB/s) and a host-to-device copy from pinned
memory (GB/s). If they moved with the model, the machine or its driver moved; if only the model moved,
the software did (``sdshape.regression.attribution``). MongoDB runs such canaries beside its
performance tests for the same reason.

On a GPU: fp16 GEMM 4096 x 4096 x 4096, copies of 256 MiB, timed by CUDA events around each repetition
(several calls per repetition, so launch gaps do not dominate a 0.2 ms GEMM). On the CPU: fp32 GEMM
384 x 384 x 384 and a 16 MiB host copy, timed by ``perf_counter`` (CPU kernels return when done); a
host-to-device copy does not exist there and is recorded as not applicable, with no figure. Warm-up
repetitions are excluded; the figure is the median of the timed repetitions, with their spread.

Not the *parity* reference (``sdshape.run.reference``: eager fp32 outputs the stages are checked
against): this one is about the machine, that one about correctness.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from sdshape.result.records import ReferenceFigure, ReferenceWorkload

METHOD = 1  # bump when a size, dtype, count or formula changes: figures of two methods never compare
REPETITIONS = 9
WARMUP = 2
MIB = 1 << 20


@dataclass(frozen=True)
class Sizes:
    """The fixed sizes of one device kind: part of every figure's conditions."""

    gemm: int  # M = N = K
    gemm_dtype: torch.dtype
    gemm_calls: int  # per repetition
    copy_bytes: int
    copy_calls: int  # per repetition


GPU_SIZES = Sizes(gemm=4096, gemm_dtype=torch.float16, gemm_calls=20, copy_bytes=256 * MIB, copy_calls=10)
CPU_SIZES = Sizes(gemm=384, gemm_dtype=torch.float32, gemm_calls=1, copy_bytes=16 * MIB, copy_calls=1)
DTYPE_NAMES = {torch.float16: "fp16", torch.float32: "fp32"}
HOST_TO_DEVICE_ON_CPU = "not applicable: the CPU has no separate device memory to copy to"


class Clock:
    """Seconds of one repetition: CUDA events on a GPU (device time of the queued work), else perf_counter."""

    def __init__(self, device: torch.device):
        self.device = device
        self.name = "CUDA events around each repetition" if device.type == "cuda" else "time.perf_counter"

    def time(self, work: Callable[[], None]) -> float:
        if self.device.type != "cuda":
            start = time.perf_counter()
            work()
            return time.perf_counter() - start
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        work()
        end.record()
        end.synchronize()
        return begin.elapsed_time(end) / 1e3


def figure(
    name: str,
    unit: str,
    conditions: str,
    work: Callable[[], None],
    amount: float,
    clock: Clock,
    calls: int,
) -> ReferenceFigure:
    """``work`` (``calls`` calls) timed over :data:`REPETITIONS` after :data:`WARMUP`; ``amount`` is what
    one repetition does, in the unit's numerator (TFLOP or GB), so each repetition's figure is amount / s."""
    for _ in range(WARMUP):
        clock.time(work)
    seconds = [clock.time(work) for _ in range(REPETITIONS)]
    rates = [amount / s for s in seconds if s > 0]
    if len(rates) < len(seconds):
        return ReferenceFigure(name=name, unit=unit, conditions=conditions, note="a repetition timed at 0 s")
    q1, _, q3 = statistics.quantiles(rates, n=4)
    middle = statistics.median(rates)
    return ReferenceFigure(
        name=name, unit=unit, median=middle, low=min(rates), high=max(rates), spread=(q3 - q1) / middle,
        repetitions=rates, calls_per_repetition=calls, warmup=WARMUP, conditions=conditions,
    )  # fmt: skip


def gemm(device: torch.device, sizes: Sizes, clock: Clock) -> ReferenceFigure:
    n, dtype = sizes.gemm, sizes.gemm_dtype
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=generator).to(device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)

    def work() -> None:
        for _ in range(sizes.gemm_calls):
            torch.mm(a, b, out=out)

    conditions = f"{DTYPE_NAMES[dtype]} GEMM {n}x{n}x{n} on {device.type}"
    return figure("gemm", "TFLOP/s", conditions, work, 2 * n**3 * sizes.gemm_calls / 1e12, clock, sizes.gemm_calls)


def device_copy(device: torch.device, sizes: Sizes, clock: Clock) -> ReferenceFigure:
    source = torch.ones(sizes.copy_bytes, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)

    def work() -> None:
        for _ in range(sizes.copy_calls):
            target.copy_(source)

    where = "device-to-device" if device.type == "cuda" else "host memory"
    conditions = f"{where} copy of {sizes.copy_bytes // MIB} MiB on {device.type}"
    amount = sizes.copy_bytes * sizes.copy_calls / 1e9
    return figure("device_copy", "GB/s", conditions, work, amount, clock, sizes.copy_calls)


def host_to_device(device: torch.device, sizes: Sizes, clock: Clock) -> ReferenceFigure:
    if device.type != "cuda":
        return ReferenceFigure(name="host_to_device", unit="GB/s", conditions="on cpu", note=HOST_TO_DEVICE_ON_CPU)
    source = torch.ones(sizes.copy_bytes, dtype=torch.uint8).pin_memory()
    target = torch.empty(sizes.copy_bytes, dtype=torch.uint8, device=device)

    def work() -> None:
        target.copy_(source, non_blocking=True)

    conditions = f"host-to-device copy of {sizes.copy_bytes // MIB} MiB from pinned memory on {device.type}"
    return figure("host_to_device", "GB/s", conditions, work, sizes.copy_bytes / 1e9, clock, 1)


MEASURES = (("GEMM", gemm), ("device copy", device_copy), ("host-to-device copy", host_to_device))


def measure(device: torch.device, progress: Any = None) -> ReferenceWorkload:
    """The three figures on ``device``, each in turn, its memory released after it. A figure that fails
    (out of memory under a small --vram-cap, say) says why in its note, and has no number."""
    sizes = GPU_SIZES if device.type == "cuda" else CPU_SIZES
    clock = Clock(device)
    task = progress.add_task("reference workload: GEMM, copies", total=len(MEASURES)) if progress else None
    started = time.perf_counter()
    figures = []
    with torch.inference_mode():
        for label, measured in MEASURES:
            if progress is not None:
                progress.update(task, description=f"reference workload: {label}")
            try:
                figures.append(measured(device, sizes, clock))
            except RuntimeError as error:  # torch.OutOfMemoryError included
                name = measured.__name__
                unit = "TFLOP/s" if name == "gemm" else "GB/s"
                note = f"failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                figures.append(ReferenceFigure(name=name, unit=unit, note=note))
            finally:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                    torch.cuda.empty_cache()
            if progress is not None:
                progress.update(task, advance=1)
    return ReferenceWorkload(
        method=METHOD,
        device=device.type,
        device_name=device_name(device),
        timer=clock.name,
        cost_s=time.perf_counter() - started,
        figures=figures,
    )


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} torch threads"
