"""How one measured stage becomes its row: :func:`result_of`, a pure function of the plan and the
:class:`~sdshape.run.measured.MeasuredStage` value; the :class:`StageResult` is built once, then only
serialized.

Everything a row says comes from the plan and from what the session read while the stage was resident
(``sdshape.run.measured``), here in one place; nothing here reads the machine. The memory figures pass
the rules (``sdshape.result.rules``) before the result exists, so no impossible figure is ever written.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

from sdshape.backends import recorded
from sdshape.config.plan import Plan
from sdshape.core import units
from sdshape.core.vocabulary import KINDS_OF_STAGE, METHODS
from sdshape.measurement.sampling import WindowStats
from sdshape.models.flops import FLOPS_NOTE
from sdshape.result.fingerprint import device_label
from sdshape.result.model import (
    BackendRun,
    Conditions,
    Cost,
    Energy,
    Memory,
    ResultId,
    StageResult,
    Timing,
)
from sdshape.result.records import (
    ArtifactRecord,
    Baseline,
    Clocks,
    MemoryFigures,
    Sampler,
    Throttle,
)
from sdshape.run.measured import MeasuredStage, SessionContext

# The peaks over the baseline, per judged memory (``sdshape.measurement.memory.judged_keys``).
BASELINE_PEAKS = {
    "host_rss_bytes": ("host_rss_peak_bytes",),
    "nvml_process_bytes": ("nvml_process_peak_bytes", "nvml_device_peak_bytes"),
    "nvml_device_bytes": ("nvml_process_peak_bytes", "nvml_device_peak_bytes"),
}
PEAK_NOTE = (
    "*_peak_bytes: peak over the reading taken before any model was loaded (on a GPU the CUDA context "
    "already existed: it is cuda_context_bytes, apart); *_rise_bytes: timed-round peak over the reading "
    "before the stage's warm-up (weights already resident, caches released)"
)


def step_summary(step_s: list[list[float]]) -> dict[str, Any] | None:
    if not step_s or not step_s[0]:
        return None
    per_step = [statistics.median(values) for values in zip(*step_s, strict=False)]
    rest = [value for steps in step_s for value in steps[1:]]
    return {
        "first_s": per_step[0],
        "rest_median_s": statistics.median(rest) if rest else None,
        "per_step_median_s": per_step,
        "rounds": step_s,
    }


def baseline_error(baseline: Baseline | None) -> str | None:
    """Why the peaks over the baseline cannot be trusted: memory was not back down when it was read."""
    if baseline is None or baseline.settled:
        return None
    excess = ", ".join(f"{key} {units.size(baseline.excess_bytes.get(key, 0))}" for key in baseline.judged_by)
    return (
        f"the baseline was read while more than {units.size(baseline.slack_bytes or 0)} above the level before the "
        f"previous session was still held ({excess}, after {baseline.waited_s or 0.0:.1f} s): peaks over it would "
        "be too small"
    )


def memory_of(plan: Plan, measured: MeasuredStage, weights: int | None) -> Memory:
    context, window = measured.context, measured.outcome.window
    figures: dict[str, Any] = {
        "weights_bytes": weights,
        # every stage runs with all three components resident: the least any peak can hold
        "resident_weights_bytes": context.resident_weights_bytes,
        "cuda_context_bytes": context.cuda_context_bytes,
        "torch_reserved_at_baseline_bytes": context.torch_reserved_at_baseline,
        **(measured.outcome.torch_memory or {}),
    }
    notes: list[str] = []
    if measured.weights_unpaged_bytes is not None:
        figures["weights_unpaged_bytes"] = measured.weights_unpaged_bytes
    if window is not None:
        figures["nvml_process_peak_bytes"] = window.peaks.get("nvml_process_bytes")
        figures["nvml_device_peak_bytes"] = window.peaks.get("nvml_device_bytes")
        figures["host_rss_peak_bytes"] = window.peaks.get("host_rss_bytes")
        figures["nvml_process_rise_bytes"] = window.rises.get("nvml_process_bytes")
        figures["host_rss_rise_bytes"] = window.rises.get("host_rss_bytes")
        notes.append(PEAK_NOTE)
        if context.nvml_available and figures["nvml_process_peak_bytes"] is None:
            notes.append("NVML did not list this process (container PID namespace?): process peak is null")
    if not context.nvml_available:
        notes.append(f"NVML readings are null: {context.nvml_reason}")
    baseline = context.baseline
    error = baseline_error(baseline)
    if error and baseline is not None:
        for judged in baseline.judged_by:
            figures.update(dict.fromkeys(BASELINE_PEAKS[judged]))
    return Memory(MemoryFigures(**figures), notes, error, baseline).checked(plan.device.type)


def clock_records(context: SessionContext, window: WindowStats | None) -> tuple[Throttle | None, Clocks | None]:
    """What NVML saw of the clocks while the stage was timed (None, None: it never reached its timed rounds).
    Without NVML (on the CPU) both records say so, with the reason, and hold nothing else."""
    if window is None:
        return None, None
    if not context.nvml_available:
        reason = context.nvml_reason or "NVML unavailable"
        return Throttle(available=False, note=reason), Clocks(available=False, note=reason)
    if window.reason_readings:
        throttle = Throttle(
            reasons=window.slowdown_reasons, throttled=window.throttled, other_reasons=window.other_reasons,
            readings=window.reason_readings, available=True,
        )  # fmt: skip
    else:
        note = "NVML answered neither nvmlDeviceGetCurrentClocksEventReasons nor its older ThrottleReasons name"
        throttle = Throttle(readings=0, available=False, note=note)
    clocks = Clocks(
        available=window.clock_readings > 0,
        note=None if window.clock_readings else "NVML did not report the SM clock (nvmlDeviceGetClockInfo)",
        readings=window.clock_readings,
        sm_mhz=window.sm_clock_mhz,
        mem_mhz=window.mem_clock_mhz,
        **context.clock_settings,
    )
    return throttle, clocks


def artifact_of_stage(context: SessionContext, stage: str) -> ArtifactRecord | None:
    """How the stage's runner(s) were made: built now, reused from the cache, or nothing to build."""
    made = {kind: context.artifacts[kind] for kind in KINDS_OF_STAGE[stage] if kind in context.artifacts}
    if not made:
        return None
    if len(made) == 1:
        return ArtifactRecord.from_json(next(iter(made.values())).as_dict())
    caches = {a.cache for a in made.values()}
    return ArtifactRecord.from_json({
        "cache": caches.pop() if len(caches) == 1 else "mixed",
        "build_s": sum(a.build_s for a in made.values()),
        "parts": {kind: artifact.as_dict() for kind, artifact in made.items()},
    })  # fmt: skip


def result_of(plan: Plan, measured: MeasuredStage) -> StageResult:
    """The stage's row, from the plan and what was measured; reads nothing else."""
    context, outcome, stats, reading = measured.context, measured.outcome, measured.stats, measured.energy
    built, stage, status = context.built, measured.stage, measured.status
    facts = context.facts.get(stage)
    total = context.facts.get("pipeline")
    window = outcome.window
    median = (stats or {}).get("median")
    flops = facts.flops if facts else None
    energy = reading.joules_per_call if reading else None
    note = None
    if energy is None:
        note = (reading.note if reading else None) or context.nvml_reason or "energy was not measured"
    throttle, clocks = clock_records(context, window)
    o = plan.options
    rid = ResultId(
        stage, built.name if built else o.shape, context.backend_label, o.precision, o.batch, o.resolution, o.steps
    )  # fmt: skip
    guidance = built.family.guidance(built.specs["denoiser"]) if built else None
    conditions = Conditions(
        device=plan.device.type,
        device_name=device_label(dict(context.environment)) if context.environment else plan.device.type,
        guidance_scale=plan.guidance,
        cfg=guidance == "cfg" if built else None,
        family=built.family.name if built else None,
        guidance=guidance,
        vae_precision=plan.precision_of("vae") if plan.precision_of("vae") != plan.options.precision else None,
        policy=plan.options.policy,
        vae_tiling=plan.options.vae_tiling,
        vae_slicing=plan.options.vae_slicing,
        sequence_length=plan.options.sequence_length,
        composition_notes=list(plan.shape_spec.notes) if plan.shape_spec else [],
        seed=plan.options.seed,
        weights=built.weights if built else ("random" if plan.weights is None else str(plan.weights)),
        components={kind: spec.name for kind, spec in built.specs.items()} if built else None,
        sm_clock_mhz=window.sm_clock_mhz if window else None,
        methods=dict(METHODS),
        throttle=throttle,
        clocks=clocks,
        sampler=Sampler(
            interval_s=context.sampler_interval_s,
            samples_in_window=window.samples if window else 0,
            window_s=window.duration_s if window else None,
            sources="nvml+psutil" if context.nvml_available else "psutil",
        ),
    )
    cost = Cost(
        params=facts.params if facts else None,
        param_share=facts.params / total.params if facts and total and total.params else None,
        params_executed=facts.params_executed if facts else None,
        flops=flops,
        flops_note=FLOPS_NOTE,
        tflops_achieved=flops / median / 1e12 if flops and median else None,
        buffers=facts.buffers if facts else None,
    )
    timing = Timing(
        rounds_s=list((stats or {}).get("data") or []),
        timer=measured.timer or outcome.timer,
        warmup_rounds=plan.options.warmup,
        stats=stats,
        step_times=step_summary(outcome.step_s) if stage == "denoise_loop" else None,
        stopping=outcome.stopping,
        # another harness timed the rounds (pytest-benchmark): the device's own times go beside
        device_timer=outcome.timer if measured.timer else None,
        device_rounds_s=list(outcome.rounds_s) if measured.timer else None,
    )
    backend = BackendRun(
        name=context.backend_name,
        options=recorded(dict(context.backend_options)),
        artifact=artifact_of_stage(context, stage),
        build_s={k: round(v, 3) for k, v in built.build_s.items()} if built else None,
        prepare_s=context.prepare_s,
    )
    power = window.power_w_mean if window else None
    cap = None
    if context.vram_cap is not None:
        cap = dataclasses.replace(context.vram_cap, fits=status == "ok" if status != "error" else None)
    return StageResult(
        id=rid,
        status=status,
        message=measured.message,
        conditions=conditions,
        cost=cost,
        timing=timing,
        memory=memory_of(plan, measured, facts.weight_bytes if facts else None),
        energy=Energy(energy, reading.as_dict() if reading else None, note, power_w_mean=power),
        backend=backend,
        parity=measured.parity,
        cap=cap,
        kernels=measured.kernels,
    )
