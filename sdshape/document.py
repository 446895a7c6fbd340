"""Results as a pytest-benchmark-shaped JSON document.

``sdshape run --json`` and ``pytest bench/ --benchmark-json`` write the same
schema: ``machine_info`` (with the environment fingerprint), ``commit_info``,
``benchmarks`` (one per stage: ``stats`` with the raw rounds in ``data``, and
everything else in ``extra_info``), ``datetime``, ``version``. A stage that
failed is still a benchmark, with ``stats: null`` and its status and message.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from typing import Any

from pytest_benchmark import __version__ as pytest_benchmark_version
from pytest_benchmark.stats import Stats

from sdshape import __version__, units
from sdshape.checks import apply_memory_rules
from sdshape.environment import device_label
from sdshape.flops import FLOPS_NOTE
from sdshape.measure import Outcome
from sdshape.vocabulary import ID_FIELDS, KINDS_OF_STAGE, PER_IMAGE_STAGES, STAGES


def stats_dict(rounds_s: list[float]) -> dict[str, Any] | None:
    """pytest-benchmark's own statistics over the timed rounds (seconds), raw rounds in ``data``."""
    if not rounds_s:
        return None
    stats = Stats()
    for value in rounds_s:
        stats.update(value)
    result = stats.as_dict()
    result["data"] = list(rounds_s)
    result["iterations"] = 1
    return result


def _step_summary(step_s: list[list[float]]) -> dict[str, Any] | None:
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


def extra_info(session: Any, outcome: Outcome, median_s: float | None) -> dict[str, Any]:
    """Everything but the timing statistics, for one stage of one session."""
    plan = session.plan
    built = session.built
    facts = session.facts.get(outcome.stage)
    total = session.facts.get("pipeline")
    window = outcome.window
    memory: dict[str, int | None] = {
        "weights_bytes": facts.weight_bytes if facts else None,
        # every stage runs with all three components resident: the least any peak can hold
        "resident_weights_bytes": session.resident_weights_bytes,
        "cuda_context_bytes": session.cuda_context_bytes,
    }
    if outcome.torch_memory:
        memory.update(outcome.torch_memory)
    notes: list[str] = []
    if window is not None:
        memory["nvml_process_peak_bytes"] = window.peaks.get("nvml_process_bytes")
        memory["nvml_device_peak_bytes"] = window.peaks.get("nvml_device_bytes")
        memory["host_rss_peak_bytes"] = window.peaks.get("host_rss_bytes")
        memory["nvml_process_rise_bytes"] = window.rises.get("nvml_process_bytes")
        memory["host_rss_rise_bytes"] = window.rises.get("host_rss_bytes")
        notes.append(
            "*_peak_bytes: peak over the reading taken before any model was loaded (on a GPU the CUDA context "
            "already existed: it is cuda_context_bytes, apart); "
            "*_rise_bytes: timed-round peak over the reading before the stage's warm-up (weights already resident, "
            "caches released)"
        )
        if session.nvml is not None and memory["nvml_process_peak_bytes"] is None:
            notes.append("NVML did not list this process (container PID namespace?): process peak is null")
    if session.nvml is None:
        notes.append(f"NVML readings are null: {session.nvml_reason}")
    rounds = len(outcome.rounds_s)
    reading = outcome.energy
    energy = reading.joules_per_call if reading else None
    if energy is None:
        energy_note = (reading.note if reading else None) or session.nvml_reason or "energy was not measured"
    else:
        energy_note = None
    flops = facts.flops if facts else None
    info: dict[str, Any] = {
        "stage": outcome.stage,
        "shape": built.name if built else plan.shape,
        "backend": session.backend,
        "precision": plan.precision,
        "batch": plan.batch,
        "resolution": plan.resolution,
        "steps": plan.steps,
        "device": plan.device.type,
        "device_name": device_label(session.environment) if session.environment else plan.device.type,
        "guidance_scale": plan.guidance,
        "cfg": True,
        "sequence_length": plan.sequence_length,
        "composition_notes": list(plan.shape_spec.notes) if plan.shape_spec else [],
        "seed": plan.seed,
        "weights": built.weights if built else ("random" if plan.weights is None else str(plan.weights)),
        "components": {kind: spec.name for kind, spec in built.specs.items()} if built else None,
        "params": facts.params if facts else None,
        "param_share": facts.params / total.params if facts and total and total.params else None,
        "params_executed": facts.params_executed if facts else None,
        "flops": flops,
        "flops_note": FLOPS_NOTE,
        "tflops_achieved": flops / median_s / 1e12 if flops and median_s else None,
        "memory": memory,
        "memory_notes": notes,
        "memory_error": baseline_error(session),
        "baseline": session.settled.as_dict() if session.settled else None,
        "energy_j": energy,
        "energy_method": reading.as_dict() if reading else None,
        "energy_note": energy_note,
        "power_w_mean": window.power_w_mean if window else None,
        "sm_clock_mhz": window.sm_clock_mhz if window else None,
        "throttle": {"reasons": window.slowdown_reasons, "throttled": window.throttled} if window else None,
        "sampler": {
            "interval_s": session.sampler.interval_s,
            "samples_in_window": window.samples if window else 0,
            "window_s": window.duration_s if window else None,
            "sources": "nvml+psutil" if session.nvml is not None else "psutil",
        },
        "timer": outcome.timer,
        "rounds": rounds,
        "warmup_rounds": plan.warmup,
        "step_times": _step_summary(outcome.step_s) if outcome.stage == "unet_loop" else None,
        "backend_name": session.backend_name,
        "backend_options": _backend_options(session),
        "artifact": _artifact(session, outcome.stage),
        "parity": outcome.parity,
        "vram_cap": (
            {**session.vram_cap, "fits": outcome.status == "ok" if outcome.status != "error" else None}
            if session.vram_cap
            else None
        ),
        "status": outcome.status,
        "message": outcome.message,
        "build_s": {k: round(v, 3) for k, v in built.build_s.items()} if built else None,
        "prepare_s": session.prepare_s,
    }
    info["id"] = {key: info[key] for key in ID_FIELDS}
    return checked(info)


# The peaks over the baseline, per judged memory (``sampling.judged_keys``).
BASELINE_PEAKS = {
    "host_rss_bytes": ("host_rss_peak_bytes",),
    "nvml_process_bytes": ("nvml_process_peak_bytes", "nvml_device_peak_bytes"),
    "nvml_device_bytes": ("nvml_process_peak_bytes", "nvml_device_peak_bytes"),
}


def baseline_error(session: Any) -> str | None:
    """Why the peaks over the baseline cannot be trusted: memory was not back down when it was read."""
    settled = session.settled
    if settled is None or settled.settled:
        return None
    excess = ", ".join(f"{key} {units.size(settled.excess_bytes.get(key, 0))}" for key in settled.judged)
    return (
        f"the baseline was read while more than {units.size(settled.slack_bytes)} above the level before the "
        f"previous session was still held ({excess}, after {settled.waited_s:.1f} s): peaks over it would be too small"
    )


def checked(info: dict[str, Any]) -> dict[str, Any]:
    """The row with an unsettled baseline's peaks and every figure breaking a memory rule set to null."""
    settled = info.get("baseline")
    if info.get("memory_error") and settled:
        unsettled = [peak for judged in settled["judged_by"] for peak in BASELINE_PEAKS[judged]]
        info["memory"] = {**info["memory"], **dict.fromkeys(unsettled)}
    return apply_memory_rules(info)


def _backend_options(session: Any) -> dict[str, Any]:
    from sdshape.backends import recorded

    return recorded(session.backend_options)


def _artifact(session: Any, stage: str) -> dict[str, Any] | None:
    """How the stage's runner(s) were made: built now, reused from the cache, or nothing to build."""
    artifacts = [session.artifacts[kind] for kind in KINDS_OF_STAGE[stage] if kind in session.artifacts]
    if not artifacts:
        return None
    if len(artifacts) == 1:
        return artifacts[0].as_dict()
    caches = {a.cache for a in artifacts}
    return {
        "cache": caches.pop() if len(caches) == 1 else "mixed",
        "build_s": sum(a.build_s for a in artifacts),
        "parts": {kind: session.artifacts[kind].as_dict() for kind in KINDS_OF_STAGE[stage]},
    }


def benchmark_entry(session: Any, outcome: Outcome) -> dict[str, Any]:
    """One stage as a pytest-benchmark ``benchmarks`` item."""
    stats = stats_dict(outcome.rounds_s) if outcome.status == "ok" else None
    info = extra_info(session, outcome, stats["median"] if stats else None)
    return entry_for(info, stats)


def entry_for(info: dict[str, Any], stats: dict[str, Any] | None) -> dict[str, Any]:
    parts = (info["shape"], info["backend"], info["precision"], f"b{info['batch']}", f"{info['resolution']}px")
    label = "-".join((*parts, f"{info['steps']}steps"))
    name = f"{info['stage']}[{label}]"
    return {
        "group": info["shape"],
        "name": name,
        "fullname": f"sdshape::{name}",
        "params": None,
        "param": None,
        "extra_info": info,
        "options": {"timer": info["timer"], "warmup": info["warmup_rounds"], "rounds": info["rounds"]},
        "stats": stats,
    }


def _run_key(info: dict[str, Any]) -> tuple:
    return tuple(info.get(key) for key in ID_FIELDS if key != "stage")


def finalize(benchmarks: list[dict[str, Any]]) -> None:
    """Shares of time and energy across the per-image stages, and the pipeline's residual.

    The residual is the pipeline's median minus the sum of the three stage
    medians: near zero means the per-stage numbers add up to a real image.
    """
    runs: dict[tuple, dict[str, dict]] = {}
    for bench in benchmarks:
        info = bench["extra_info"]
        runs.setdefault(_run_key(info), {})[info["stage"]] = bench
    for stages in runs.values():
        medians = {s: b["stats"]["median"] for s, b in stages.items() if b.get("stats")}
        energies = {s: b["extra_info"].get("energy_j") for s, b in stages.items()}
        complete = all(s in medians for s in PER_IMAGE_STAGES)
        time_total = sum(medians[s] for s in PER_IMAGE_STAGES) if complete else None
        energy_values = [energies.get(s) for s in PER_IMAGE_STAGES]
        energy_total = sum(energy_values) if all(v is not None for v in energy_values) else None
        for stage, bench in stages.items():
            info = bench["extra_info"]
            info["time_share"] = medians[stage] / time_total if time_total and stage in PER_IMAGE_STAGES else None
            share = energies.get(stage) / energy_total if energy_total and stage in PER_IMAGE_STAGES else None
            info["energy_share"] = share
        if "pipeline" in stages and "pipeline" in medians and time_total:
            spreads = [stages[s]["stats"].get("iqr") or 0.0 for s in (*PER_IMAGE_STAGES, "pipeline")]
            stages["pipeline"]["extra_info"]["residual"] = residual_check(medians, spreads)


# Beyond the rounds' spread, a residual under this share of the pipeline is launch and hand-over time
# between stages (a conditioning tensor built, a latent handed on), not a contradiction.
RESIDUAL_FLOOR = 0.01


def residual_check(medians: dict[str, float], spreads: list[float]) -> dict[str, Any]:
    """The pipeline against the sum of its stages, and whether the difference is inside their spread.

    The combined spread is the stages' and the pipeline's IQRs added in quadrature.
    A residual beyond it (and beyond 1% of the pipeline) is a warning, not a
    finding: the rounds were too few or too noisy for the shares to be trusted.
    """
    total = sum(medians[s] for s in PER_IMAGE_STAGES)
    pipeline = medians["pipeline"]
    residual = pipeline - total
    spread = math.sqrt(sum(value**2 for value in spreads))
    slower = [s for s in PER_IMAGE_STAGES if medians[s] > pipeline]
    return {
        "sum_of_stages_s": total,
        "residual_s": residual,
        "residual_share": residual / pipeline,
        "combined_spread_s": spread,
        "within_spread": abs(residual) <= spread + RESIDUAL_FLOOR * pipeline and not slower,
        "stages_slower_than_pipeline": slower,
    }


def machine_info(environment: dict[str, Any]) -> dict[str, Any]:
    """pytest-benchmark's machine_info plus the sdshape environment fingerprint."""
    from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info

    info = pytest_benchmark_generate_machine_info()
    info.update(flat_fingerprint(environment))
    return info


def flat_fingerprint(environment: dict[str, Any]) -> dict[str, Any]:
    flat = dict(environment)
    for library, version in environment.get("libraries", {}).items():
        flat[f"{library.replace('-', '_')}_version"] = version
    return flat


def document(benchmarks: list[dict[str, Any]], environment: dict[str, Any]) -> dict[str, Any]:
    from pytest_benchmark.utils import get_commit_info

    finalize(benchmarks)
    return {
        "machine_info": machine_info(environment),
        "commit_info": get_commit_info(),
        "benchmarks": benchmarks,
        "datetime": dt.datetime.now(dt.UTC).isoformat(),
        "version": pytest_benchmark_version,
        "sdshape_version": __version__,
        "stages": list(STAGES),
    }
