"""``--vram-cap``: a smaller card emulated on a larger one, so "fits an 8 GiB card" is a measurement.

torch's caching allocator gets a per-process memory fraction of the cap minus
what the process already holds (the CUDA context, counted as a real card must
hold it); backends with an allocator of their own (ONNX Runtime's arena) get
the same budget as ``memory_budget_bytes``. Stages then run or run out of memory.
"""

from __future__ import annotations

from typing import Any

import torch


def cuda_index(device: torch.device) -> int:
    """The CUDA device index torch calls need (``torch.device("cuda")`` alone names none)."""
    return device.index if device.index is not None else torch.cuda.current_device()


def apply_vram_cap(plan: Any, reading: dict[str, Any], cuda_context_bytes: int | None) -> dict[str, Any]:
    """Emulate a smaller card: torch (and ORT's arena) get the cap minus what this process already holds.

    The CUDA context exists by now (the campaign creates it before any baseline);
    what the process holds (NVML's reading for it, else the device's used memory)
    is taken off the cap, so "fits an 8 GiB card" includes the context, as on a
    real 8 GiB card.
    """
    cap = plan.vram_cap_bytes
    index = cuda_index(plan.device)
    free, total = torch.cuda.mem_get_info(index)
    held = reading.get("nvml_process_bytes") or (total - free)
    budget = max(cap - held, 0)
    fraction = min(budget / total, 1.0)
    # torch wants an indexed device here: torch.device("cuda") alone is refused.
    torch.cuda.set_per_process_memory_fraction(fraction, index)
    return {
        "cap_bytes": cap,
        "cuda_context_bytes": cuda_context_bytes,
        "held_before_bytes": held,
        "torch_budget_bytes": budget,
        "torch_fraction": fraction,
        "device_total_bytes": total,
        "policy": "all three components resident (the session holds them all)",
    }
