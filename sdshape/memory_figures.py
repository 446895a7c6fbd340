"""Which memory figure stands for a stage: decided here, once, for the table, compare, report and explorer.

Peak: on a GPU, NVML's reading for this process (it sees the CUDA context's
neighbours: cuDNN workspaces, ONNX Runtime, TensorRT), else torch's reserved
peak; on the CPU, host RSS. Activations: on a GPU, torch's allocated peak over
what was resident when the rounds began; on the CPU, the host-RSS rise over the
level before the stage. A figure that broke a memory rule is null in the row
(``sdshape.checks``), so it stands for nothing, and ``memory_error`` says why.
"""

from __future__ import annotations

from typing import Any, NamedTuple

PEAK_ORDER = {
    "cuda": (("nvml_process_peak_bytes", "NVML process"), ("torch_reserved_peak_bytes", "torch reserved")),
    "cpu": (("host_rss_peak_bytes", "host RSS"),),
}
ACTIVATION_ORDER = {
    "cuda": (("torch_activation_peak_bytes", "torch allocator peak over resident"),),
    "cpu": (("host_rss_rise_bytes", "host RSS rise"),),
}


class Figure(NamedTuple):
    """A memory figure that stands for something: its bytes (None: no valid reading), label and key."""

    bytes: int | None
    label: str
    key: str


def device_of(info: dict[str, Any]) -> str:
    """The row's device; a row without one is a GPU row when it holds any GPU reading."""
    if info.get("device"):
        return info["device"]
    memory = info.get("memory") or {}
    return "cuda" if any(key.startswith(("nvml_", "torch_")) for key in memory) else "cpu"


def _first(info: dict[str, Any], order: dict[str, tuple]) -> Figure:
    memory = info.get("memory") or {}
    choices = order.get(device_of(info), order["cpu"])
    for key, label in choices:
        if memory.get(key) is not None:
            return Figure(memory[key], label, key)
    return Figure(None, choices[0][1], choices[0][0])


def standing_peak(info: dict[str, Any]) -> Figure:
    """The peak that stands for the stage's memory; its bytes are None when no reading is valid."""
    return _first(info, PEAK_ORDER)


def activations(info: dict[str, Any]) -> Figure:
    """The stage's own working memory over its resident weights."""
    return _first(info, ACTIVATION_ORDER)


def caption_label(device: str | None) -> str:
    """The label of the figure a device's table is captioned with (its first choice)."""
    return PEAK_ORDER.get(device or "cpu", PEAK_ORDER["cpu"])[0][1]
