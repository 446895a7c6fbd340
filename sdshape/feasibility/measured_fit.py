"""Feasibility from a measured run: which card its measured memory fits, under which residency policy.

Memory comes from the run's measurements (weights and activation peaks per stage) plus the CUDA context;
every figure says which measurement it came from. Time on other cards, and any shape at any settings
without a run, come from the static model (:mod:`sdshape.feasibility`, ``sdshape fit``): a measured stage
time cannot be scaled to another card by a ratio of datasheet rates, because an eager run's time is
mostly its host's (the H100 eager loop ran at 5% of its roofline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sdshape.core.errors import choices_error
from sdshape.core.units import GIB
from sdshape.core.vocabulary import PER_IMAGE_STAGES
from sdshape.feasibility.catalog import GPU, match_measured
from sdshape.result.io import ResultFile

# When the context cannot be measured (CPU results): a CUDA 12 context with cuBLAS/cuDNN loaded
# takes several hundred MiB; 0.75 GiB is assumed and labelled as an assumption wherever used.
ASSUMED_CONTEXT_BYTES = int(0.75 * GIB)
VAE_TILE_PX = 512
# The static model's policies (sdshape.feasibility.policies), as far as a measured run can price them:
# sequential offload needs each layer's size, which a run does not record (``sdshape fit`` has it).
POLICIES = {
    "all_resident": "all three components resident",
    "text_encoders_dropped": "text encoders run alone, then freed; denoiser and VAE loaded after",
    "model_offload": "one component on the GPU at a time (enable_model_cpu_offload)",
    "vae_tiled": "model offload, plus VAE decode tiled (512 px tiles) and sliced (one image at a time)",
}
STAGES = PER_IMAGE_STAGES


@dataclass
class StageCost:
    """What one stage of a measured run costs, with where each number came from."""

    stage: str
    weights: int
    activations: int
    activations_source: str
    flops: int | None
    weight_traffic: int  # bytes read from weights per stage call (weights x module calls)
    measured_s: float | None
    busy_s: float | None = None  # GPU kernel time per call (the profiled round's busy union), when profiled


@dataclass
class RunProfile:
    """One measured run (shape, backend, precision, batch, resolution, steps) as the model needs it."""

    key: dict[str, Any]
    stages: dict[str, StageCost]
    context: int
    context_source: str
    measured_on: str
    measured_gpu: GPU | None
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        k = self.key
        return f"{k['shape']} {k['precision']} {k['resolution']}px b{k['batch']} {k['steps']} steps ({k['backend']})"


def profiles(result: ResultFile, catalog: dict[str, GPU]) -> tuple[list[RunProfile], list[str]]:
    """Every complete run in a results file (all three per-image stages ok), and why others were skipped.

    A run whose activation figure broke a memory rule (``memory_error``) is skipped
    and said so: the model must not be built on a number known to be wrong.
    """
    runs: dict[tuple, dict[str, Any]] = {}
    for row in result.rows.values():
        key = {k: v for k, v in row.id.as_dict().items() if k != "stage"}
        runs.setdefault(row.id.run_key, {"key": key, "rows": {}})["rows"][row.stage] = row
    machine = result.machine_info
    gpu = match_measured(catalog, machine.get("gpu_name"), machine.get("gpu_memory_bytes"))
    out: list[RunProfile] = []
    skipped: list[str] = []
    for run in runs.values():
        rows = run["rows"]
        label = " ".join(str(v) for v in run["key"].values())
        if not all(s in rows and rows[s].status == "ok" for s in STAGES):
            continue
        on_gpu = rows["denoise_loop"].device == "cuda"
        stages = {}
        for stage in STAGES:
            row = rows[stage]
            activations, source, _ = row.activations()
            if activations is None:
                why = row.memory.error or "no activation reading"
                skipped.append(f"{result.path} {label}: {stage} memory flagged, run skipped: {why}")
                break
            if not on_gpu:
                source += " on the CPU (stands in for GPU activations; CPU kernels' workspaces differ)"
            weights = row.memory.figures.weights_bytes or 0
            calls = run["key"]["steps"] if stage == "denoise_loop" else 1
            kernels = row.kernels
            busy = kernels.busy_s if kernels is not None and kernels.busy_fraction is not None else None
            stages[stage] = StageCost(
                stage, weights, activations, source, row.cost.flops, weights * calls, row.median, busy
            )
        if len(stages) != len(STAGES):
            continue
        context, context_source = _context(rows, on_gpu)
        out.append(RunProfile(run["key"], stages, context, context_source, result.gpu, gpu if on_gpu else None))
    return out, skipped


def _context(rows: dict[str, Any], on_gpu: bool) -> tuple[int, str]:
    if on_gpu:
        for stage in STAGES:
            measured = rows[stage].memory.figures.cuda_context_bytes
            if measured:
                return measured, "measured: NVML's reading for the process once the CUDA context existed"
        gaps = []
        for stage in STAGES:
            memory = rows[stage].memory
            nvml, reserved = memory.figures.nvml_process_peak_bytes, memory.figures.torch_reserved_peak_bytes
            if nvml is not None and reserved is not None:
                gaps.append(nvml - reserved)
        if gaps and min(gaps) > 0:
            return min(gaps), "measured: NVML process peak minus torch reserved peak (smallest over stages)"
    return ASSUMED_CONTEXT_BYTES, "assumed, not measurable in this run"


def vram_needed(run: RunProfile, policy: str) -> int:
    """Peak VRAM under a residency policy: resident weights + the stage's activations + context."""
    s = run.stages
    w = {k: v.weights for k, v in s.items()}
    a = {k: v.activations for k, v in s.items()}
    if policy == "all_resident":
        peak = sum(w.values()) + max(a.values())
    elif policy == "text_encoders_dropped":
        peak = max(
            w["text_encoder"] + a["text_encoder"],
            w["denoise_loop"] + w["vae_decode"] + max(a["denoise_loop"], a["vae_decode"]),
        )
    elif policy == "model_offload":
        peak = max(w[k] + a[k] for k in STAGES)
    elif policy == "vae_tiled":
        resolution, batch = run.key["resolution"], run.key["batch"]
        tiled = a["vae_decode"] * min(1.0, (VAE_TILE_PX / resolution) ** 2) / max(batch, 1)
        peak = max(
            w["text_encoder"] + a["text_encoder"], w["denoise_loop"] + a["denoise_loop"], w["vae_decode"] + int(tiled)
        )
    else:
        raise choices_error("policy", policy, list(POLICIES))
    return int(peak + run.context)


def stage_need(run: RunProfile, stage: str) -> int:
    """VRAM one stage needs with all three components resident: every weight, that stage's activations
    (the pipeline: the largest), the CUDA context. What ``--vram-cap`` measures."""
    weights = sum(cost.weights for cost in run.stages.values())
    if stage == "pipeline":
        activations = max(cost.activations for cost in run.stages.values())
    else:
        activations = run.stages[stage].activations
    return weights + activations + run.context


def feasibility(run: RunProfile, gpu: GPU) -> dict[str, Any]:
    """Per policy: VRAM needed and whether it fits; the verdict; the projected speed."""
    needs = {policy: vram_needed(run, policy) for policy in POLICIES}
    fits = {policy: need <= gpu.vram_bytes for policy, need in needs.items()}
    if fits["all_resident"]:
        verdict = "fits"
    elif any(fits.values()):
        verdict = "needs offload"
    else:
        verdict = "does not fit"
    best = next((p for p in POLICIES if fits[p]), None)
    return {
        "gpu": gpu.name,
        "run": run.key,
        "needs_bytes": needs,
        "fits": fits,
        "verdict": verdict,
        "best_policy": best,
        "memory_sources": {
            "weights": "weights_bytes of each stage's component (measured run)",
            "activations": {s: c.activations_source for s, c in run.stages.items()},
            "context": run.context_source,
        },
    }
