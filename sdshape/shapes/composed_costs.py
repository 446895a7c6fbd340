"""``sdshape shapes --measure``: each distinct component measured once, per-image costs composed, one checked.

Each distinct component (each text encoder, each UNet per cross-attention
width, each VAE) is measured inside the first composition that contains it,
through the campaign (one session at a time, clean baselines); a composition's
cost is then its parts' (text encoder once, UNet ``steps`` times at CFG batch,
VAE once), and one composition is measured end to end to check that rule.
"""

from __future__ import annotations

import math
from typing import Any

from sdshape.core.vocabulary import KINDS, STAGE_OF_KIND, STAGES
from sdshape.result.model import StageResult
from sdshape.shapes.compositions import Composition


def measure(compositions: list[Composition], plan: Any, progress: Any = None, check: int = 0) -> dict[str, Any]:
    """Measure every distinct component once; compose per-image costs; check one composition end to end.

    ``plan`` is a resolved run plan (device, precision, resolution, steps, rounds, backend); each
    distinct component is measured inside the first composition that contains it.
    """
    from sdshape.run.campaign import Campaign
    from sdshape.run.recording import result_of

    campaign = Campaign(plan, progress)
    measured: dict[str, dict[str, Any]] = {}  # component name -> {seconds, weights, activations, energy}
    machine: dict[str, Any] = {}  # where it ran, as the first session's fingerprint names it
    for composition in compositions:
        specs = composition.shape.specs or {}
        missing = [kind for kind in KINDS if specs[kind].name not in measured]
        if not missing:
            continue
        with campaign.session(plan.backends[0], plan=_plan_for(plan, composition)) as session:
            session.build()
            machine = machine or machine_of(session.environment)
            for kind in missing:
                result = result_of(session.plan, session.measure(STAGE_OF_KIND[kind]))
                measured[specs[kind].name] = component_cost(result, kind, plan.options.steps)
    for composition in compositions:
        composition.measured = compose_costs(composition, measured)
    rank_with_ties(compositions)
    checked = None
    if compositions:
        target = compositions[min(check, len(compositions) - 1)]
        with campaign.session(plan.backends[0], plan=_plan_for(plan, target)) as session:
            session.build()
            stages = {stage: result_of(session.plan, session.measure(stage)) for stage in STAGES}
        checked = composition_check(target, stages)
    return {"components": measured, "check": checked, "machine": machine}


def machine_of(environment: dict[str, Any]) -> dict[str, Any]:
    """The device a measurement ran on, as torch and NVML name it (``shapes --gpu`` compares it with the card)."""
    keys = ("device", "gpu_name", "gpu_memory_bytes", "cpu_model")
    return {key: environment.get(key) for key in keys}


def _half_ci(result: StageResult) -> float | None:
    """Half the median's 95% CI in seconds (None: too few rounds to bracket it)."""
    rel = result.timing.rel_ci
    return rel * result.median if rel is not None and result.median is not None else None


def _combined(*halves: float | None) -> float | None:
    """Half-widths of independent measurements added in quadrature (None if any is unknown)."""
    return None if any(h is None for h in halves) else math.sqrt(sum(h * h for h in halves))  # type: ignore[operator]


def composition_check(target: Composition, stages: dict[str, StageResult]) -> dict[str, Any]:
    """The composition rule checked on one composition measured end to end.

    The composed time agrees when it is within the combined CI of the composed parts and the
    end-to-end pipeline; otherwise the component whose measured cost differs most from its own stage
    in the end-to-end session (in units of their combined CI) is named as the one that is off.
    """
    pipeline = stages["pipeline"]
    composed = target.measured.get("seconds_per_image")
    end_to_end = pipeline.median
    check: dict[str, Any] = {
        "name": target.shape.name,
        "end_to_end_s": end_to_end,
        "composed_s": composed,
        "difference": (composed / end_to_end - 1) if composed and end_to_end else None,
        "status": pipeline.status,
    }
    if composed is None or end_to_end is None:
        return {**check, "agrees": None, "combined_ci_s": None, "off": None}
    combined = _combined(target.measured.get("ci_s"), _half_ci(pipeline))
    agrees = combined is not None and abs(composed - end_to_end) <= combined
    off, worst = None, 0.0
    for kind in KINDS:
        stage = stages[STAGE_OF_KIND[kind]]
        part = (target.measured.get("seconds_by_kind") or {}).get(kind)
        if part is None or stage.median is None:
            continue
        spread = _combined((target.measured.get("ci_by_kind") or {}).get(kind), _half_ci(stage)) or 0.0
        gap = abs(part - stage.median) / spread if spread else abs(part - stage.median) / stage.median
        if gap > worst:
            off, worst = kind, gap
    return {**check, "agrees": agrees, "combined_ci_s": combined, "off": None if agrees else off}


def rank_with_ties(compositions: list[Composition]) -> None:
    """Rank by seconds per image; a composition whose difference from the one ranked before it is inside
    their combined CI shares its rank (``tied``), so noise never orders two compositions."""
    measured = [c for c in compositions if (c.measured or {}).get("status") == "ok"]
    measured.sort(key=lambda c: c.measured["seconds_per_image"])
    rank, previous = 0, None
    for position, composition in enumerate(measured, start=1):
        cost = composition.measured
        tied = False
        if previous is not None:
            combined = _combined(cost.get("ci_s"), previous.measured.get("ci_s"))
            gap = cost["seconds_per_image"] - previous.measured["seconds_per_image"]
            tied = combined is not None and gap <= combined
        rank = rank if tied else position
        cost["rank"], cost["tied"] = rank, tied
        if tied:
            previous.measured["tied"] = True  # type: ignore[union-attr]
        previous = composition


def _plan_for(plan: Any, composition: Composition) -> Any:
    """The run plan with this composition as its shape (parity off: there is no eager fp32 twin to compare)."""
    import dataclasses

    shape = composition.shape
    plan = plan.with_options(shape=shape.name, sequence_length=shape.sequence_length, parity=False)
    return dataclasses.replace(plan, shape_spec=shape)


def component_cost(result: StageResult, kind: str, steps: int) -> dict[str, Any]:
    """One component's measured cost, read from its result: the same figures and rules as ``run``."""
    median = result.median
    activations, source, _ = result.activations()
    status = result.status
    if status == "ok" and activations is None:
        status = "memory_flagged"
    half = _half_ci(result)
    return {
        "status": status,
        "seconds": median,
        "ci_s": half,
        "rel_ci": result.timing.rel_ci,
        "busy_fraction": result.kernels.busy_fraction if result.kernels else None,
        "host_bound": result.host_bound,
        # the loop was measured at `steps`; per step, so a composition at any step count can use it
        "seconds_per_call": median / steps if median is not None and kind == "denoiser" else median,
        "weight_bytes": result.memory.figures.weights_bytes,
        "activation_bytes": activations,
        "activation_source": source,
        "memory_error": result.memory.error,
        "energy_j": result.energy.joules_per_call,
    }


def compose_costs(composition: Composition, measured: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per image: text encoder once, UNet steps times, VAE once; VRAM with everything resident."""
    specs = composition.shape.specs or {}
    costs = {kind: measured.get(specs[kind].name) for kind in KINDS}
    if any(c is None or c["status"] != "ok" for c in costs.values()):
        bad = [specs[k].name for k, c in costs.items() if c is None or c["status"] != "ok"]
        return {"status": "incomplete", "failed_components": bad}
    seconds = costs["text_encoder"]["seconds"] + costs["denoiser"]["seconds"] + costs["vae"]["seconds"]
    weights = sum(c["weight_bytes"] for c in costs.values())
    peak = weights + max(c["activation_bytes"] for c in costs.values())
    energies = [c["energy_j"] for c in costs.values()]
    halves = {kind: c.get("ci_s") for kind, c in costs.items()}
    return {
        "status": "ok",
        "seconds_per_image": seconds,
        "ci_s": _combined(*halves.values()),
        "ci_by_kind": halves,
        "seconds_by_kind": {kind: c["seconds"] for kind, c in costs.items()},
        "peak_bytes": peak,
        "peak_note": "all resident: weights + the largest activation peak ("
        + costs["denoiser"]["activation_source"]
        + ")",
        "energy_j": sum(energies) if all(e is not None for e in energies) else None,
    }


def cost_per_100m(compositions: list[Composition], measured: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per component kind: seconds and bytes of activations per 100 M parameters, over measured components."""
    rows = []
    seen: set[str] = set()
    for composition in compositions:
        specs = composition.shape.specs or {}
        for kind in KINDS:
            spec = specs[kind]
            cost = measured.get(spec.name)
            if spec.name in seen or not cost or cost["status"] != "ok":
                continue
            seen.add(spec.name)
            per = composition.params[kind] / 1e8
            rows.append(
                {
                    "kind": kind,
                    "component": spec.name,
                    "params": composition.params[kind],
                    "seconds_per_image": cost["seconds"],
                    "seconds_per_100m": cost["seconds"] / per if per else None,
                    "activation_bytes_per_100m": cost["activation_bytes"] / per if per else None,
                }
            )
    return sorted(rows, key=lambda r: (KINDS.index(r["kind"]), -r["params"]))
