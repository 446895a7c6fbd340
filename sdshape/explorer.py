"""``sdshape shapes --budget N``: every composition within a parameter budget, and what each costs.

Static costs (always): parameters per component and in total (after the UNet's
cross-attention is adapted to the text encoder), FLOPs per image, weight bytes.
With ``--measure``: each *distinct* component is measured once (text encoder
per sequence length, UNet per cross-attention width, VAE), per-image costs are
composed (text encoder once, UNet ``steps`` times at CFG batch, VAE once), and
one composition is also measured end to end, to check the composition rule.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field
from typing import Any

from sdshape import memory_figures
from sdshape.build import count_params, meta_module
from sdshape.call_inputs import call_shapes
from sdshape.errors import UsageError
from sdshape.flops import count_flops, meta_inputs
from sdshape.vocabulary import KINDS, STAGE_OF_KIND, weight_bytes_by_precision
from sdshape.zoo import COMPONENTS, ShapeSpec
from sdshape.zoo.compose import compose
from sdshape.zoo.specs import ComponentSpec

# Config keys that change no weight or FLOP (the SD 2.1 and SDXL VAEs are the SD VAE's architecture).
_NOT_ARCHITECTURE = {"sample_size", "scaling_factor", "force_upcast"}


def candidates(family: str) -> dict[str, list[ComponentSpec]]:
    """Zoo components per kind: ``zoo`` (real architectures) or ``tiny`` (test-sized ones)."""
    if family not in ("zoo", "tiny"):
        raise UsageError(f"unknown component family {family!r}; valid choices: zoo, tiny")
    chosen: dict[str, list[ComponentSpec]] = {kind: [] for kind in KINDS}
    seen_configs: set[str] = set()
    for spec in COMPONENTS.values():
        tiny = spec.name.startswith("tiny-")
        if spec.is_stack or tiny != (family == "tiny"):
            continue
        architecture = {k: v for k, v in spec.config.items() if k not in _NOT_ARCHITECTURE}
        signature = repr((spec.library_class, sorted(architecture.items())))
        if signature in seen_configs:
            continue  # sd21-vae and sdxl-vae are the SD VAE's architecture: count it once
        seen_configs.add(signature)
        chosen[spec.kind].append(spec)
    return chosen


@dataclass
class Composition:
    shape: ShapeSpec
    params: dict[str, int]
    flops: dict[str, int]  # per image
    measured: dict[str, Any] = field(default_factory=dict)

    @property
    def total_params(self) -> int:
        return sum(self.params.values())

    def as_dict(self, steps: int) -> dict[str, Any]:
        total = self.total_params
        return {
            "name": self.shape.name,
            "components": {kind: getattr(self.shape, kind) for kind in KINDS},
            "params": total,
            "params_by_kind": self.params,
            "param_shares": {kind: value / total for kind, value in self.params.items()},
            "flops_per_image": sum(self.flops.values()),
            "flops_by_kind": self.flops,
            "weight_bytes": weight_bytes_by_precision(total),
            "sequence_length": self.shape.sequence_length,
            "adaptation": list(self.shape.notes),
            "steps": steps,
            **({"measured": self.measured} if self.measured else {}),
        }


class _Counter:
    """Parameter and FLOP counts on the meta device, each distinct component counted once."""

    def __init__(self, resolution: int, steps: int):
        self.resolution, self.steps = resolution, steps
        self._params: dict[str, int] = {}
        self._flops: dict[tuple, int] = {}

    def params(self, spec: ComponentSpec) -> int:
        if spec.name not in self._params:
            self._params[spec.name] = count_params(meta_module(spec))
        return self._params[spec.name]

    def flops(self, kind: str, spec: ComponentSpec, specs: dict[str, ComponentSpec], seq: int) -> int:
        key = (spec.name, seq)
        if key not in self._flops:
            shapes = call_shapes(specs, batch=1, resolution=self.resolution, sequence_length=seq)  # type: ignore[arg-type]
            self._flops[key] = count_flops(meta_module(spec), meta_inputs(shapes.for_kind(kind)))  # type: ignore[arg-type]
        calls = self.steps if kind == "unet" else 1
        return self._flops[key] * calls


def enumerate_shapes(
    budget: float, family: str = "zoo", resolution: int = 512, steps: int = 50, sequence_length: int = 77
) -> tuple[list[Composition], dict[str, int]]:
    """Compositions within ``budget`` parameters, largest first, and how many were left out and why."""
    pools = candidates(family)
    counter = _Counter(resolution, steps)
    found: list[Composition] = []
    skipped = {"over budget": 0, "incompatible": 0}
    for te, unet, vae in itertools.product(pools["text_encoder"], pools["unet"], pools["vae"]):
        seq = sequence_length
        if "max_position_embeddings" in te.config:
            seq = min(seq, te.config["max_position_embeddings"])
        # Cheap bound first: without adaptation, would it fit at all?
        rough = counter.params(te) + counter.params(unet) + counter.params(vae)
        if rough > budget * 1.05:
            skipped["over budget"] += 1
            continue
        try:
            shape = compose(te.name, unet.name, vae.name, seq)
        except UsageError:
            skipped["incompatible"] += 1
            continue
        specs = shape.specs or {}
        params = {kind: counter.params(specs[kind]) for kind in KINDS}
        if sum(params.values()) > budget:
            skipped["over budget"] += 1
            continue
        flops = {kind: counter.flops(kind, specs[kind], specs, seq) for kind in KINDS}
        found.append(Composition(shape, params, flops))
    found.sort(key=lambda c: -c.total_params)
    return found, skipped


def measure(compositions: list[Composition], plan: Any, progress: Any = None, check: int = 0) -> dict[str, Any]:
    """Measure every distinct component once; compose per-image costs; check one composition end to end.

    ``plan`` is a resolved run plan (device, precision, resolution, steps, rounds, backend); each
    distinct component is measured inside the first composition that contains it.
    """

    from sdshape.session import Campaign

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
                outcome = session.measure(STAGE_OF_KIND[kind])
                measured[specs[kind].name] = _component_cost(session, outcome, kind, plan.steps)
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
            end_to_end = _median(outcome.rounds_s)
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


def _median(values: list[float]) -> float | None:
    """The median of the timed rounds; None when a failed stage left none."""
    return statistics.median(values) if values else None


def _component_cost(session: Any, outcome: Any, kind: str, steps: int) -> dict[str, Any]:
    """One component's measured cost, read from its result row: the same figures and rules as ``run``."""
    from sdshape.document import extra_info

    median = _median(outcome.rounds_s)
    info = extra_info(session, outcome, median)
    activations, source, _ = memory_figures.activations(info)
    status = outcome.status
    if status == "ok" and activations is None:
        status = "memory_flagged"
    return {
        "status": status,
        "seconds": median,
        # the loop was measured at `steps`; per step, so a composition at any step count can use it
        "seconds_per_call": median / steps if median is not None and kind == "unet" else median,
        "weight_bytes": info["memory"]["weights_bytes"],
        "activation_bytes": activations,
        "activation_source": source,
        "memory_error": info.get("memory_error"),
        "energy_j": info["energy_j"],
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


def pareto_chart(shapes: list[dict[str, Any]], path: Any, conditions: str) -> None:
    """Parameters against seconds per image and against peak memory; the Pareto front marked.

    ``shapes`` are the rows of a shapes document (``Composition.as_dict``), so a
    saved ``shapes.json`` can be charted again by ``sdshape report``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [s for s in shapes if (s.get("measured") or {}).get("status") == "ok"]
    if not points:
        raise UsageError("no measured composition to chart (run sdshape shapes with --measure)")
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for axis, key, label, scale in (
        (axes[0], "seconds_per_image", "seconds per image", 1.0),
        (axes[1], "peak_bytes", "peak memory (GiB)", 2**30),
    ):
        xs = [s["params"] / 1e9 for s in points]
        ys = [s["measured"][key] / scale for s in points]
        axis.scatter(xs, ys, s=18, color="#888")
        front = _pareto([(x, y, s["name"]) for x, y, s in zip(xs, ys, points, strict=True)])
        axis.plot([p[0] for p in front], [p[1] for p in front], color="C0", marker="o")
        for x, y, name in front:
            axis.annotate(name.replace("+", "\n"), (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        axis.set_xlabel("parameters (billions)")
        axis.set_ylabel(label)
        axis.set_title(f"{label} vs parameters (line: the Pareto front)", fontsize=9)
    figure.suptitle(conditions, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def conditions(document: dict[str, Any]) -> str:
    """The measurement conditions of a shapes document, in one line."""
    measured = document.get("measured_conditions") or {}
    return (
        f"{document['resolution']}x{document['resolution']}, {document['steps']} steps, batch 1, CFG; "
        f"{measured.get('backend', '-')} {measured.get('precision', '-')} on {measured.get('device', '-')}, "
        f"{measured.get('rounds', '-')} rounds per component"
    )


def is_shapes_document(document: Any) -> bool:
    return isinstance(document, dict) and "budget" in document and isinstance(document.get("shapes"), list)


def _pareto(points: list[tuple[float, float, Any]]) -> list[tuple[float, float, Any]]:
    """Points not beaten on both axes by another: more parameters for less cost."""
    front = []
    for x, y, c in sorted(points, key=lambda p: (-p[0], p[1])):
        if not front or y < front[-1][1]:
            front.append((x, y, c))
    return sorted(front, key=lambda p: p[0])
