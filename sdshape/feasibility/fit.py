"""``sdshape fit``: does a shape fit a card, under which policy, and how fast, from the static model alone.

Every figure here is a *model* figure: memory from the traced activation peaks and exact weight bytes
(validated within 10% of measured allocator peaks), time from the calibrated per-op roofline with the
band its validation found. A card fits under a policy when the allocated peak plus the CUDA context
fits its memory.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import torch

from sdshape import __version__
from sdshape.backends.cache import cache_key, default_root
from sdshape.core.errors import UsageError, choices_error
from sdshape.feasibility.catalog import GPU
from sdshape.feasibility.formats import BF16_ARCHITECTURES, WeightFormat
from sdshape.feasibility.measured import ASSUMED_CONTEXT_BYTES
from sdshape.feasibility.model import TimeModel, project
from sdshape.feasibility.policies import POLICIES, peak_bytes
from sdshape.feasibility.static import ShapeStatic, static_shape, with_tiled_decode
from sdshape.models.zoo import ShapeSpec, shape_components
from sdshape.result.output import write_atomic

# Not in max_memory_allocated: the CUDA context, the same assumed 0.75 GiB a report uses when a run could
# not measure it, stated wherever a fit is judged.
CONTEXT_BYTES = ASSUMED_CONTEXT_BYTES
ESTIMATE_SOURCES = Path(__file__).parent / "estimate"


@cache
def _model_code() -> str:
    """The static model's own code, so that a cached trace made by another version is never reused."""
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(ESTIMATE_SOURCES.glob("*.py")))).hexdigest()


def _cache_file(shape: ShapeSpec, key: tuple) -> Path:
    """Beside the exported models (``$SDSHAPE_CACHE_DIR``, else the user cache dir), under ``static/``."""
    digest = cache_key({
        "model_code": _model_code(), "sdshape": __version__, "torch": torch.__version__, "key": list(key),
        "components": {kind: [s.name, s.config] for kind, s in shape_components(shape).items()},
    })  # fmt: skip
    return default_root() / "static" / f"{shape.name}-{digest[:16]}.pkl"


def cached_static(
    shape: ShapeSpec,
    resolution: int,
    steps: int,
    batch: int,
    fmt: WeightFormat,
    vae_fp16: bool,
    tiled: bool,
    progress: Callable[[str], None] | None = None,
) -> ShapeStatic:
    """The traced shape, from the trace cache when the same configs were traced before (a trace of
    SDXL takes seconds; the answer should not). A cache file that cannot be read is traced again."""
    path = _cache_file(shape, (resolution, batch, fmt.name, vae_fp16, tiled))
    try:
        static = pickle.loads(path.read_bytes())
        if isinstance(static, ShapeStatic):
            static.steps = steps
            return static
    except Exception:
        pass
    if tiled:
        full = cached_static(shape, resolution, steps, batch, fmt, vae_fp16, False, progress)
        static = with_tiled_decode(full, shape, fmt, vae_fp16)
    else:
        static = static_shape(shape, resolution, steps, batch, fmt, vae_fp16, progress)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, pickle.dumps(static))
    except OSError:
        pass  # a read-only home still gets its answer
    return static


def unsupported_reason(gpu: GPU, fmt: WeightFormat) -> str | None:
    """Why a card cannot run a precision at all (so it is marked, not projected)."""
    if fmt.compute_dtype == torch.bfloat16 and gpu.architecture and gpu.architecture not in BF16_ARCHITECTURES:
        return f"{gpu.name} ({gpu.architecture}) has no bf16 tensor cores, and {fmt.name} computes in bf16"
    return None


def fit_card(
    full: ShapeStatic,
    tiled: ShapeStatic,
    gpu: GPU,
    model: TimeModel,
    fmt: WeightFormat,
    backend: str,
    policies: tuple[str, ...],
) -> dict[str, Any]:
    peaks = {p: peak_bytes(full, p, tiled) for p in POLICIES}
    fits_by_policy = {p: peaks[p] + CONTEXT_BYTES <= gpu.vram_bytes for p in POLICIES}
    reason = unsupported_reason(gpu, fmt)
    chosen = None if reason else next((p for p in policies if fits_by_policy[p]), None)
    efficiency, calibrated = model.efficiency(gpu)
    entry: dict[str, Any] = {
        "gpu": gpu.name,
        "architecture": gpu.architecture,
        "vram_bytes": gpu.vram_bytes,
        "fits": chosen is not None,
        "policy": chosen,
        "peak_bytes": peaks["all_resident"],
        "peak_bytes_by_policy": peaks,
        "fits_by_policy": fits_by_policy,
        "context_bytes": CONTEXT_BYTES,
        "supported": reason is None,
        "unsupported_reason": reason,
        "seconds_per_image": None,
        "seconds_band": None,
        "loop_it_s": None,
        "bound": None,
        "source": "model",
        "calibrated": calibrated,
        "calibration": efficiency.source,
    }
    if chosen is None:
        return entry
    static = tiled if chosen in ("vae_tiled", "sequential_offload") else full
    projection = project(static, gpu, model, backend, chosen, efficiency)
    seconds = projection.seconds_per_image
    low, high = model.band
    entry.update(
        seconds_per_image=seconds,
        seconds_band=[seconds * low, seconds * high],
        loop_it_s=1 / projection.loop_step_s,
        bound="link" if projection.link_s > seconds / 2 else projection.bound,
        link_bytes_per_image=projection.link_bytes,
        link_s_per_image=projection.link_s,
        host_s_per_step=projection.stages["denoise_loop"].host_s,
        gpu_s_per_step=projection.stages["denoise_loop"].gpu_s,
    )
    return entry


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
) -> dict[str, Any]:
    if policy is not None and policy not in POLICIES:
        raise choices_error("policy", policy, list(POLICIES))
    policies = (policy,) if policy else POLICIES
    missing = [g.name for g in gpus if g.sms is None or g.architecture is None]
    if missing:
        raise UsageError(f"cards without 'architecture' and 'sms' in the catalog cannot be modelled: {missing}")
    full = cached_static(shape, resolution, steps, batch, fmt, vae_fp16, False, progress)
    tiled = cached_static(shape, resolution, steps, batch, fmt, vae_fp16, True, progress)
    return {
        "shape": shape.name,
        "resolution": resolution,
        "steps": steps,
        "batch": batch,
        "precision": fmt.name,
        "precision_note": fmt.description,
        "backend": backend,
        "guidance": full.guidance,
        "label": "model: static memory trace and calibrated roofline projection; no GPU, no earlier run",
        "stages": {
            name: {
                "component": s.component,
                "dtype": s.dtype,
                "weight_bytes": s.weight_bytes,
                "activation_peak_bytes": s.activation_peak_bytes,
                "tiled_activation_peak_bytes": tiled.stages[name].activation_peak_bytes,
                "launches_per_call": s.trace.launches,
                "flops_per_call": s.trace.flops(),
                "calls_per_image": s.calls_per_image,
                "notes": s.notes,
            }
            for name, s in full.stages.items()
        },
        "context_bytes": CONTEXT_BYTES,
        "context_note": "CUDA context assumed 0.75 GiB on every card, added to the allocated peak to judge a fit",
        "time_model": {"host": model.host_source, "band": model.band_source},
        "cards": [fit_card(full, tiled, gpu, model, fmt, backend, policies) for gpu in gpus],
    }
