"""Synchronized stage timing.

On a GPU, time is read from CUDA events recorded on the stream the work is
queued on; they are only read after a synchronize, so the host never races the
device. On the CPU, ``time.perf_counter_ns``. A :class:`Clock` takes marks
(round start, each denoising step, round end) without synchronizing between
them, so per-step timing does not perturb the loop it measures.
"""

from __future__ import annotations

import time

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """Marks on one device; intervals between consecutive marks in seconds."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        self._marks: list = []

    @property
    def timer_name(self) -> str:
        return "cuda_event" if self.cuda else "perf_counter"

    def reset(self) -> None:
        self._marks = []

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))
            self._marks.append(event)
        else:
            self._marks.append(time.perf_counter_ns())

    def intervals_s(self) -> list[float]:
        """Seconds between consecutive marks; call after :func:`synchronize`."""
        if self.cuda:
            return [a.elapsed_time(b) / 1e3 for a, b in zip(self._marks, self._marks[1:], strict=False)]
        return [(b - a) / 1e9 for a, b in zip(self._marks, self._marks[1:], strict=False)]
