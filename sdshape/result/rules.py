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

from sdshape.core import units

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
# Host RSS over a baseline can fall short of new weights by what the C allocator reuses: pages freed
# earlier in the process that malloc_trim cannot hand back (fragmentation) count in the baseline and are
# filled again. Torch's CUDA allocator hands back every free segment, so GPU figures get no such slack.
HOST_REUSE_BYTES = 64 << 20
# NVML sees every byte the process has on the GPU, torch's reserved segments included: its peak over the
# baseline cannot be below what torch held at the window's end beyond what it held at the baseline. The
# margin covers NVML's page rounding, not a missed reading: torch's cache hands nothing back mid-window.
NVML_VS_TORCH_MARGIN_BYTES = 16 << 20
NVML_PEAKS = ("nvml_process_peak_bytes", "nvml_device_peak_bytes")
# Why a figure reads low. The first is what the first GPU run did. The second is host RSS only: it counts
# file-backed pages (shared libraries) that memory pressure may evict; the sampler leaves out file pages
# that shrank (``sampling._growth``), and weights mapped but never paged in are left out of the floor
# (``weights_unpaged_bytes``): an SD 1.5 ONNX Runtime text encoder read 2% "under its weights" for that.
CAUSES = (
    "a baseline read while earlier memory was still held reads low; so does host RSS whose baseline "
    "pages were evicted since, under memory pressure"
)
# What a figure in a results file can be at all; a file holding anything beyond is refused as it is read
# (``sdshape.result.io``). A round longer than a day is not a measurement, nor one shorter than a
# nanosecond (a few clock cycles); no device or host holds a pebibyte; no single device draws 10 kW.
MAX_ROUND_S = 86_400.0
MIN_ROUND_S = 1e-9
MAX_MEMORY_BYTES = 1 << 50
MAX_POWER_W = 10_000.0
MAX_ENERGY_J = MAX_ROUND_S * MAX_POWER_W


def _floor_for(key: str, device: str | None, resident_weights: int, unpaged: int = 0) -> int | None:
    """The least ``key`` can read with ``resident_weights`` resident on this device (None: no floor).

    On the host, weights memory-mapped from files and never touched (``weights_unpaged_bytes``) are not in
    memory: they are no part of the floor."""
    if device == "cuda":
        return resident_weights if key in DEVICE_PEAKS else None
    return resident_weights - unpaged - HOST_REUSE_BYTES if key in HOST_PEAKS else None


def check_memory(
    memory: dict[str, Any], resident_weights: int | None, device: str | None
) -> tuple[dict[str, Any], str | None]:
    """A copy of ``memory`` with every figure that breaks a rule set to None, and the reasons (or None)."""
    checked = dict(memory)
    reasons: list[str] = []
    unpaged = _unpaged(checked, resident_weights, reasons)
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
        elif (
            resident_weights
            and (floor := _floor_for(key, device, resident_weights, unpaged)) is not None
            and value < floor
        ):
            mapped = f", {units.size(unpaged)} of them mapped from files and never paged in" if unpaged else ""
            reasons.append(
                f"{key} read {units.size(value)}, below the {units.size(resident_weights)} of weights resident "
                f"during the window{mapped}"
            )
            checked[key] = None
    if device == "cuda":
        reasons += _below_torch(checked)
    if not reasons:
        return checked, None
    return checked, "; ".join(reasons) + f" ({CAUSES})"


def _unpaged(checked: dict[str, Any], resident_weights: int | None, reasons: list[str]) -> int:
    """``weights_unpaged_bytes`` where it can be true: a byte count no larger than the weights it is part
    of. Anything else is nulled with the reason (a file claiming more would excuse any host peak)."""
    value = checked.get("weights_unpaged_bytes")
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= (resident_weights or 0):
        return value
    limit = units.size(resident_weights) if resident_weights else "no"
    reasons.append(f"weights_unpaged_bytes read {value!r}: not a byte count within the {limit} resident weights")
    checked["weights_unpaged_bytes"] = None
    return 0


def _below_torch(checked: dict[str, Any]) -> list[str]:
    """Null the NVML peaks that read less than torch's own reserved memory grew by (and say why).

    The first H100 run's ``compile:reduce-overhead`` rows read an NVML process peak of 2.76 GB while
    torch had 4.76 GB reserved: no weights rule catches that (the peak still exceeds the weights), but
    NVML cannot see less than the process's own allocator holds."""
    held = checked.get("torch_reserved_end_bytes")
    if held is None:  # files written before the end reading was recorded: the peak is the upper bound
        held = checked.get("torch_reserved_peak_bytes")
    if not isinstance(held, (int, float)) or isinstance(held, bool):
        return []
    at_baseline = checked.get("torch_reserved_at_baseline_bytes") or 0
    owned = held - at_baseline
    reasons = []
    for key in NVML_PEAKS:
        value = checked.get(key)
        if isinstance(value, (int, float)) and value + NVML_VS_TORCH_MARGIN_BYTES < owned:
            reasons.append(
                f"{key} read {units.size(value)}, below the {units.size(owned)} torch's allocator itself held "
                "over the baseline"
            )
            checked[key] = None
    return reasons
