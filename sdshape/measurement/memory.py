"""Clean baselines: a session's pre-load reading is taken only once memory is back down.

A baseline read while an earlier model is still resident makes every later peak too small: the first GPU
run printed negative peaks that way (the eager fp32 parity reference still held its weights). The campaign
releases the previous session, then :func:`settle` releases memory and reads it until it is back near the
level before that session loaded, and records whether it got there (``extra_info["baseline"]``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from sdshape.measurement.sampling import MEMORY_KEYS, ReadingSource
from sdshape.result.records import Baseline, VramCap

# Memory may stay this far above the level before the previous session (library state such as
# cuBLAS/cuDNN workspaces and loaded kernels, Python modules): at least 256 MiB, or half the
# previous session's weights, so a model left resident is always caught.
MIN_SLACK_BYTES = 256 << 20
SETTLE_TIMEOUT_S = 3.0


def slack_after(previous_weights: int) -> int:
    return max(MIN_SLACK_BYTES, previous_weights // 2)


@dataclass
class Settled:
    """The reading a session's baseline is taken from, and whether memory came back down before it."""

    reading: dict[str, float | int | None]
    excess_bytes: dict[str, int]  # per memory key: this reading minus the level before the previous session
    slack_bytes: int
    waited_s: float
    judged: tuple[str, ...] = ("host_rss_bytes",)  # the keys of the memory being measured

    @property
    def settled(self) -> bool:
        return all(self.excess_bytes.get(key, 0) <= self.slack_bytes for key in self.judged)

    def record(self) -> Baseline:
        """Whether memory settled, as the row records it."""
        return Baseline(
            settled=self.settled,
            judged_by=list(self.judged),
            excess_bytes=dict(self.excess_bytes),
            slack_bytes=self.slack_bytes,
            waited_s=round(self.waited_s, 3),
        )


def judged_keys(reading: dict, on_gpu: bool) -> tuple[str, ...]:
    """Which memory a session's baseline must see released: this process's GPU memory on a GPU (the
    device's, when NVML cannot see the process), host RSS on the CPU. Host RSS on a GPU run grows with
    libraries loaded once (cuDNN, Triton, ONNX Runtime) and is not what is measured there."""
    if not on_gpu:
        return ("host_rss_bytes",)
    return ("nvml_process_bytes",) if reading.get("nvml_process_bytes") is not None else ("nvml_device_bytes",)


def settle(
    source: ReadingSource,
    previous: dict | None,
    slack_bytes: int,
    release: Callable[[], None],
    on_gpu: bool = False,
    timeout_s: float = 3.0,
    poll_s: float = 0.05,
) -> Settled:
    """Release memory and read it until it is back within ``slack_bytes`` of ``previous`` (the level
    before the previous session loaded anything), or until ``timeout_s``.

    A baseline read while an earlier model is still resident makes every later peak too small (the
    first GPU run printed negative peaks that way), so the reading is only taken once memory is back.
    ``release`` (a full garbage collection and cache release) runs first and then every ten polls.
    """
    start = time.perf_counter()
    polls = 0
    while True:
        if polls % 10 == 0:
            release()
        polls += 1
        reading = source.read()
        excess = {
            key: int(reading[key] - previous[key])
            for key in MEMORY_KEYS
            if previous and reading.get(key) is not None and previous.get(key) is not None
        }
        found = Settled(reading, excess, slack_bytes, time.perf_counter() - start, judged_keys(reading, on_gpu))
        if found.settled or found.waited_s >= timeout_s:
            return found
        time.sleep(poll_s)


def cuda_index(device: torch.device) -> int:
    """The CUDA device index torch calls need (``torch.device("cuda")`` alone names none)."""
    return device.index if device.index is not None else torch.cuda.current_device()


def apply_vram_cap(cap: int, device: torch.device, reading: dict[str, Any], cuda_context_bytes: int | None) -> VramCap:
    """Emulate a smaller card: torch (and ORT's arena) get the cap minus what this process already holds.

    The CUDA context exists by now (the campaign creates it before any baseline);
    what the process holds (NVML's reading for it, else the device's used memory)
    is taken off the cap, so "fits an 8 GiB card" includes the context, as on a
    real 8 GiB card.
    """
    index = cuda_index(device)
    free, total = torch.cuda.mem_get_info(index)
    held = reading.get("nvml_process_bytes") or (total - free)
    budget = max(cap - held, 0)
    fraction = min(budget / total, 1.0)
    # torch wants an indexed device here: torch.device("cuda") alone is refused.
    torch.cuda.set_per_process_memory_fraction(fraction, index)
    return VramCap(
        cap_bytes=cap,
        cuda_context_bytes=cuda_context_bytes,
        held_before_bytes=held,
        torch_budget_bytes=budget,
        torch_fraction=fraction,
        device_total_bytes=total,
        policy="all three components resident (the session holds them all)",
    )
