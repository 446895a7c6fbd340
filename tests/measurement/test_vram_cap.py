"""--vram-cap against torch's real set_per_process_memory_fraction, on a machine without a GPU.

On the H100 every stage failed with "Expected a torch.device with a specified
index or an integer, but got:cuda" (tests/data/gpu-runs/.../*vram-cap*). Here
torch's own function runs, argument checks and all; only its CUDA
initialisation and the C call at its end are stood in for.
"""

from __future__ import annotations

import torch

from sdshape.measurement.memory import apply_vram_cap

GIB = 1 << 30


def test_the_cap_reaches_torch_with_an_indexed_device_and_counts_the_context(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda.memory, "_lazy_init", lambda: None)
    monkeypatch.setattr(torch._C, "_cuda_setMemoryFraction", lambda f, d: calls.append((f, d)), raising=False)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    free, total = 79 * GIB, 80 * GIB  # the process holds 1 GiB: its CUDA context
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, total))
    device = torch.device("cuda")  # no index, as `--device cuda` gives
    cap = apply_vram_cap(8 * GIB, device, {"host_rss_bytes": 1}, cuda_context_bytes=GIB)  # no NVML: held = total - free
    assert calls == [(7 / 80, 0)]  # torch's real checks passed: an index, a fraction in 0..1
    assert cap.cap_bytes == 8 * GIB and cap.held_before_bytes == GIB and cap.torch_budget_bytes == 7 * GIB
    assert cap.cuda_context_bytes == GIB and "resident" in cap.policy


def test_the_h100_failure_was_this_signature():
    """What the first GPU run passed (a device without an index) is what torch refuses."""
    from torch.cuda._utils import _get_device_index

    try:
        _get_device_index(torch.device("cuda"))
    except ValueError as error:
        assert "Expected a torch.device with a specified index" in str(error)
    else:
        raise AssertionError("torch accepted an unindexed device")
