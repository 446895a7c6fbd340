"""Rules every printed figure must obey, and what happens when one does not.

A benchmark is only worth its least true number. A memory peak over the
pre-load baseline must hold at least the weights that were resident during the
window (every stage of a session runs with all three components resident), and
no memory figure can be negative. A reading that breaks a rule is never printed
or written as a number: it becomes null, and ``memory_error`` says which rule it
broke and by how much. Readers of result files (compare, report, feasibility,
the explorer) apply the same rules, so files written before the rules existed
(the first GPU run's negative peaks) are read as flagged, not as numbers.
"""

from __future__ import annotations

import math
from typing import Any

from sdshape import units
from sdshape.memory_figures import device_of

# Peaks over the pre-load baseline (or, for torch's allocator, over an empty allocator):
# on a GPU the device figures must hold the resident weights; on the CPU host RSS must.
DEVICE_PEAKS = (
    "nvml_process_peak_bytes",
    "nvml_device_peak_bytes",
    "torch_allocated_peak_bytes",
    "torch_reserved_peak_bytes",
)
HOST_PEAKS = ("host_rss_peak_bytes",)
# Growth over a level inside the session: never negative, no weights rule.
RISES = ("nvml_process_rise_bytes", "host_rss_rise_bytes", "torch_activation_peak_bytes")
CHECKED = (*DEVICE_PEAKS, *HOST_PEAKS, *RISES)


def _rule_for(key: str, device: str | None) -> bool:
    """Whether ``key`` must hold the resident weights on this device."""
    return key in DEVICE_PEAKS if device == "cuda" else key in HOST_PEAKS


def check_memory(
    memory: dict[str, Any], resident_weights: int | None, device: str | None
) -> tuple[dict[str, Any], str | None]:
    """A copy of ``memory`` with every figure that breaks a rule set to None, and the reasons (or None)."""
    checked = dict(memory)
    reasons: list[str] = []
    for key in CHECKED:
        value = checked.get(key)
        if value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            reasons.append(f"{key} is not a finite number ({value!r})")
            checked[key] = None
        elif value < 0:
            reasons.append(f"{key} read {units.size(value)}: a memory figure cannot be negative")
            checked[key] = None
        elif resident_weights and _rule_for(key, device) and value < resident_weights:
            reasons.append(
                f"{key} read {units.size(value)}, below the {units.size(resident_weights)} of weights resident "
                "during the window"
            )
            checked[key] = None
    if not reasons:
        return checked, None
    return checked, "; ".join(reasons) + " (the baseline was probably read while earlier memory was still held)"


def resident_weights_of(info: dict[str, Any]) -> int | None:
    """The weights a row's window held: recorded since the rules exist, else the stage's own component."""
    memory = info.get("memory") or {}
    return memory.get("resident_weights_bytes") or memory.get("weights_bytes")


def apply_memory_rules(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` with its memory figures checked; an earlier ``memory_error`` is kept."""
    memory = info.get("memory")
    if not isinstance(memory, dict):
        return info
    checked, error = check_memory(memory, resident_weights_of(info), device_of(info))
    if error is None:
        return info
    earlier = info.get("memory_error")
    return {**info, "memory": checked, "memory_error": f"{earlier}; {error}" if earlier else error}
