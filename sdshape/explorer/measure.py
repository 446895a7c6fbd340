"""``sdshape shapes --measure``: each distinct component measured once, per-image costs composed, one checked.

Each distinct component (each text encoder, each UNet per cross-attention
width, each VAE) is measured inside the first composition that contains it,
through the campaign (one session at a time, clean baselines); a composition's
cost is then its parts' (text encoder once, UNet ``steps`` times at CFG batch,
VAE once), and one composition is measured end to end to check that rule.
"""

from __future__ import annotations

from typing import Any

from sdshape.explorer.compositions import Composition
from sdshape.result.model import StageResult
from sdshape.vocabulary import KINDS, STAGE_OF_KIND


def measure(compositions: list[Composition], plan: Any, progress: Any = None, check: int = 0) -> dict[str, Any]:
    """Measure every distinct component once; compose per-image costs; check one composition end to end.

    ``plan`` is a resolved run plan (device, precision, resolution, steps, rounds, backend); each
    distinct component is measured inside the first composition that contains it.
    """
    from sdshape.campaign import Campaign

    campaign = Campaign(plan, progress)
    measured: dict[str, dict[str, Any]] = {}  # component name -> {seconds, weights, activations, energy}
    for composition in compositions:
        specs = composition.shape.specs or {}
        missing = [kind for kind in KINDS if specs[kind].name not in measured]
        if not missing:
            continue
        session = campaign.open(plan.backends[0], plan=_plan_for(plan, composition))
        try:
            session.build()
            for kind in missing:
                measured[specs[kind].name] = component_cost(session.measure(STAGE_OF_KIND[kind]), kind, plan.steps)
        finally:
            campaign.close(session)
    for composition in compositions:
        composition.measured = compose_costs(composition, measured)
    checked = None
    if compositions:
        target = compositions[min(check, len(compositions) - 1)]
        session = campaign.open(plan.backends[0], plan=_plan_for(plan, target))
        try:
            session.build()
            outcome = session.measure("pipeline")
            end_to_end = outcome.median
        finally:
            campaign.close(session)
        composed = target.measured.get("seconds_per_image")
        checked = {
            "name": target.shape.name,
            "end_to_end_s": end_to_end,
            "composed_s": composed,
            "difference": (composed / end_to_end - 1) if composed and end_to_end else None,
            "status": outcome.status,
        }
    return {"components": measured, "check": checked}


def _plan_for(plan: Any, composition: Composition) -> Any:
    """The run plan with this composition as its shape (parity off: there is no eager fp32 twin to compare)."""
    import dataclasses

    shape = composition.shape
    return dataclasses.replace(
        plan, shape=shape.name, shape_spec=shape, sequence_length=shape.sequence_length, parity=False
    )


def component_cost(result: StageResult, kind: str, steps: int) -> dict[str, Any]:
    """One component's measured cost, read from its result: the same figures and rules as ``run``."""
    median = result.median
    activations, source, _ = result.activations()
    status = result.status
    if status == "ok" and activations is None:
        status = "memory_flagged"
    return {
        "status": status,
        "seconds": median,
        # the loop was measured at `steps`; per step, so a composition at any step count can use it
        "seconds_per_call": median / steps if median is not None and kind == "unet" else median,
        "weight_bytes": result.memory.get("weights_bytes"),
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
    seconds = costs["text_encoder"]["seconds"] + costs["unet"]["seconds"] + costs["vae"]["seconds"]
    weights = sum(c["weight_bytes"] for c in costs.values())
    peak = weights + max(c["activation_bytes"] for c in costs.values())
    energies = [c["energy_j"] for c in costs.values()]
    return {
        "status": "ok",
        "seconds_per_image": seconds,
        "seconds_by_kind": {kind: c["seconds"] for kind, c in costs.items()},
        "peak_bytes": peak,
        "peak_note": "all resident: weights + the largest activation peak (" + costs["unet"]["activation_source"] + ")",
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
