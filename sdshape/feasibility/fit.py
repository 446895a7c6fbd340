"""``sdshape fit``: does a shape fit a card, under which policy, and how fast, from the static model alone.

Every figure here is a *model* figure: memory from the traced activation peaks and exact weight bytes
(validated within 10% of measured allocator peaks), time from the calibrated per-op roofline with the
band its validation found. A card fits under a policy when the allocated peak plus the CUDA context
fits its memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import torch

from sdshape.core.errors import UsageError, choices_error
from sdshape.feasibility.catalog import GPU
from sdshape.feasibility.dequant import gguf_missing
from sdshape.feasibility.formats import BF16_ARCHITECTURES, FORMATS, SEARCHED, WeightFormat
from sdshape.feasibility.measured_fit import ASSUMED_CONTEXT_BYTES
from sdshape.feasibility.policies import POLICIES, host_bytes, peak_bytes
from sdshape.feasibility.static import ShapeStatic
from sdshape.feasibility.time_model import DEFAULT_HOST, Projection, TimeModel, classes_of, project
from sdshape.feasibility.timing import ArchEfficiency
from sdshape.feasibility.trace_cache import cached_static
from sdshape.models.zoo import ShapeSpec

# Not in max_memory_allocated: the CUDA context, the same assumed 0.75 GiB a report uses when a run could
# not measure it, stated wherever a fit is judged.
CONTEXT_BYTES = ASSUMED_CONTEXT_BYTES


def unsupported_reason(gpu: GPU, fmt: WeightFormat) -> str | None:
    """Why a card cannot run a precision at all (so it is marked, not projected)."""
    if fmt.compute_dtype == torch.bfloat16 and gpu.architecture and gpu.architecture not in BF16_ARCHITECTURES:
        return f"{gpu.name} ({gpu.architecture}) has no bf16 tensor cores, and {fmt.name} computes in bf16"
    return None


@dataclass(frozen=True)
class Traced:
    """One format's trace of a shape, with the VAE decoding whole and tiled."""

    fmt: WeightFormat
    full: ShapeStatic
    tiled: ShapeStatic

    def static(self, tiling: bool) -> ShapeStatic:
        return self.tiled if tiling else self.full


# Each policy without VAE tiling, then with it (tiling and slicing: the decode's peak bounded, a little slower).
CANDIDATES = tuple((policy, tiling) for policy in POLICIES for tiling in (False, True))


def candidate_name(policy: str, tiling: bool) -> str:
    return f"{policy}+vae_tiling" if tiling else policy


def _fits(traced: Traced, gpu: GPU, policy: str, tiling: bool) -> tuple[int, bool]:
    peak = peak_bytes(traced.full, policy, traced.tiled if tiling else None)
    return peak, peak + CONTEXT_BYTES <= gpu.vram_bytes


def _projected(traced: Traced, gpu: GPU, model: TimeModel, backend: str, policy: str, tiling: bool, host: str,
               efficiency: ArchEfficiency) -> Projection:  # fmt: skip
    return project(traced.static(tiling), gpu, model, backend, policy, efficiency, host, traced.fmt)


def fit_card(
    traced: Traced,
    gpu: GPU,
    model: TimeModel,
    backend: str,
    candidates: tuple[tuple[str, bool], ...],
    host: str,
    searched: list[Traced] | None = None,
) -> dict[str, Any]:
    fmt, full = traced.fmt, traced.full
    peaks = {p: _fits(traced, gpu, p, False)[0] for p in POLICIES}
    tiled_peaks = {p: _fits(traced, gpu, p, True)[0] for p in POLICIES}
    fits_by_policy = {p: peaks[p] + CONTEXT_BYTES <= gpu.vram_bytes for p in POLICIES}
    reason = unsupported_reason(gpu, fmt)
    chosen = None if reason else next(((p, t) for p, t in candidates if _fits(traced, gpu, p, t)[1]), None)
    efficiency, calibrated = model.efficiency(gpu)
    entry: dict[str, Any] = {
        "gpu": gpu.name,
        "architecture": gpu.architecture,
        "vram_bytes": gpu.vram_bytes,
        "fits": chosen is not None,
        "policy": chosen[0] if chosen else None,
        "vae_tiling": chosen[1] if chosen else None,
        "peak_bytes": peaks["all_resident"],
        "peak_bytes_by_policy": peaks,
        "peak_bytes_by_policy_vae_tiling": tiled_peaks,
        "fits_by_policy": fits_by_policy,
        "host_bytes_by_policy": {p: host_bytes(full, p) for p in POLICIES},
        "context_bytes": CONTEXT_BYTES,
        "supported": reason is None,
        "unsupported_reason": reason,
        "seconds_per_image": None,
        "seconds_per_batch": None,
        "seconds_band": None,
        "loop_it_s": None,
        "bound": None,
        "source": "model",
        "calibrated": calibrated,
        "calibration": efficiency.source,
        "host": host,
    }
    if searched is not None:
        entry["best"] = best_combination(searched, gpu, model, backend, host)
    if chosen is None:
        return entry
    policy, tiling = chosen
    projection = _projected(traced, gpu, model, backend, policy, tiling, host, efficiency)
    low, high = model.band(classes_of(fmt, policy, full.batch))
    moved = projection.moved
    entry.update(
        seconds_per_image=projection.seconds_per_image,
        seconds_per_batch=projection.seconds_per_batch,
        seconds_band=[projection.seconds_per_image * low, projection.seconds_per_image * high],
        band_classes=list(classes_of(fmt, policy, full.batch)),
        loop_it_s=1 / projection.loop_step_s,
        bound=projection.bound,
        peak_bytes_under_policy=peak_bytes(full, policy, traced.tiled if tiling else None),
        link_bytes_per_image=moved.total_bytes / full.batch,
        link_s_per_image=projection.link_s / full.batch,
        transfers={
            "h2d_bytes_per_batch": moved.h2d_bytes, "d2h_bytes_per_batch": moved.d2h_bytes,
            "copies_per_batch": moved.copies, "pinned": moved.pinned, "overlapped": moved.overlapped,
            "hidden_s_per_batch": projection.hidden_link_s, "link_efficiency": model.link(policy).value,
            "link_source": model.link(policy).source,
        },
        host_s_per_step=projection.stages["denoise_loop"].host_s,
        gpu_s_per_step=projection.stages["denoise_loop"].gpu_s,
    )  # fmt: skip
    return entry


def best_combination(searched: list[Traced], gpu: GPU, model: TimeModel, backend: str, host: str) -> dict | None:
    """The fastest format and policy that fit the card; among those within 5% of the fastest, the one whose
    format rounds least (``format_parity``: one Linear's error against fp32, measured)."""
    efficiency = model.efficiency(gpu)[0]
    found = []
    for traced in searched:
        if unsupported_reason(gpu, traced.fmt):
            continue
        for policy, tiling in CANDIDATES:
            peak, fits = _fits(traced, gpu, policy, tiling)
            if not fits:
                continue
            projection = _projected(traced, gpu, model, backend, policy, tiling, host, efficiency)
            found.append((projection.seconds_per_image, traced.fmt.name, policy, tiling, peak))
    if not found:
        return None
    fastest = min(f[0] for f in found)
    close = [f for f in found if f[0] <= fastest * 1.05]
    parity = format_parity()

    def accuracy(candidate: tuple) -> tuple[float, float]:
        error = parity.get(candidate[1], {}).get("linear_error")
        return (float("inf") if error is None else error, candidate[0])  # a format not measured comes last

    seconds, name, policy, tiling, peak = min(close, key=accuracy)
    low, high = model.band(classes_of(FORMATS[name], policy, searched[0].full.batch))
    return {
        "precision": name,
        "policy": policy,
        "vae_tiling": tiling,
        "seconds_per_image": seconds,
        "seconds_band": [seconds * low, seconds * high],
        "peak_bytes": peak,
        "parity_error": parity.get(name, {}).get("linear_error"),  # the format's own rounding, one Linear
        "parity_error_tiny_image": parity.get(name, {}).get("error"),  # the image on the tiny models
        "parity_source": parity.get(name, {}).get("source"),
    }


@cache
def format_parity() -> dict[str, dict[str, Any]]:
    """Each format's measured error against fp32 (``sdshape/data/format_parity.json``, condensed by
    ``maintainer/format_parity.py``): one Linear's, and the image's on the tiny models; empty when not measured."""
    try:
        data = json.loads(resources.files("sdshape.data").joinpath("format_parity.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data.get("formats", {})


def fit(
    shape: ShapeSpec,
    gpus: list[GPU],
    model: TimeModel,
    fmt: WeightFormat,
    resolution: int,
    steps: int,
    batch: int,
    backend: str = "eager",
    policy: str | None = None,
    vae_fp16: bool = False,
    progress: Callable[[str], None] | None = None,
    host: str = DEFAULT_HOST,
    search: bool = True,
) -> dict[str, Any]:
    if policy is not None and policy not in POLICIES:
        raise choices_error("policy", policy, list(POLICIES))
    model.host(host)  # an unknown host class is a usage error before any trace
    candidates = tuple(c for c in CANDIDATES if policy is None or c[0] == policy)
    missing = [g.name for g in gpus if g.sms is None or g.architecture is None]
    if missing:
        raise UsageError(f"cards without 'architecture' and 'sms' in the catalog cannot be modelled: {missing}")

    def traced(f: WeightFormat) -> Traced:
        return Traced(
            f,
            cached_static(shape, resolution, steps, batch, f, vae_fp16, False, progress),
            cached_static(shape, resolution, steps, batch, f, vae_fp16, True, progress),
        )

    mine = traced(fmt)
    gguf_missing(fmt, raise_error=True)
    searched = [traced(FORMATS[name]) for name in SEARCHED if not gguf_missing(FORMATS[name])] if search else None
    full = mine.full
    return {
        "shape": shape.name,
        "resolution": resolution,
        "steps": steps,
        "batch": batch,
        "precision": fmt.name,
        "precision_note": fmt.description,
        "quantized_components": list(fmt.kinds) if fmt.quantized else [],
        "backend": backend,
        "host": host,
        "guidance": full.guidance,
        "label": "model: static memory trace and calibrated roofline projection; no GPU, no earlier run",
        "stages": {
            name: {
                "component": s.component,
                "dtype": s.dtype,
                "weight_bytes": s.weight_bytes,
                "unquantized_linear_bytes": s.unquantized_bytes,
                "activation_peak_bytes": s.activation_peak_bytes,
                "tiled_activation_peak_bytes": mine.tiled.stages[name].activation_peak_bytes,
                "launches_per_call": s.trace.launches,
                "flops_per_call": s.trace.flops(),
                "calls_per_image": s.calls_per_image,
                "quantized_linear_calls": s.quantized_calls,
                "notes": s.notes,
            }
            for name, s in full.stages.items()
        },
        "context_bytes": CONTEXT_BYTES,
        "context_note": "CUDA context assumed 0.75 GiB on every card, added to the allocated peak to judge a fit",
        "time_model": {
            "host": model.host(host).source,
            "bands": model.band_sources,
            "dequant": model.dequant.source if fmt.quantized else None,
        },
        "cards": [fit_card(mine, gpu, model, backend, candidates, host, searched) for gpu in gpus],
    }
