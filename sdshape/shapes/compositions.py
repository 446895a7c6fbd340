"""Every composition of zoo components within a parameter budget, with parameters and FLOPs per image.

Counted on the meta device (nothing allocated), each distinct component once.
Cross-attention is adapted to the text encoder's width
(``sdshape.models.zoo.compose``); VAEs that differ only in metadata count once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from sdshape.core.errors import UsageError
from sdshape.core.vocabulary import KINDS, weight_bytes_by_precision
from sdshape.models.build import meta_module, spec_params
from sdshape.models.call_inputs import call_shapes
from sdshape.models.families import family_of
from sdshape.models.families.base import largest_resolution
from sdshape.models.flops import count_flops, meta_inputs
from sdshape.models.specs import ComponentSpec
from sdshape.models.zoo import ShapeSpec, all_components
from sdshape.models.zoo.compose import compose

# Config keys that change no weight or FLOP (the SD 2.1 and SDXL VAEs are the SD VAE's architecture).
_NOT_ARCHITECTURE = {"sample_size", "scaling_factor", "shift_factor", "force_upcast"}


def candidates(family: str) -> dict[str, list[ComponentSpec]]:
    """Zoo components per kind: ``zoo`` (real architectures) or ``tiny`` (test-sized ones)."""
    if family not in ("zoo", "tiny"):
        raise UsageError(f"unknown component family {family!r}; valid choices: zoo, tiny")
    chosen: dict[str, list[ComponentSpec]] = {kind: [] for kind in KINDS}
    seen_configs: set[str] = set()
    for spec in all_components().values():
        tiny = spec.name.startswith("tiny-")
        if tiny != (family == "tiny"):
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
        self._flops: dict[tuple, int] = {}

    def params(self, spec: ComponentSpec) -> int:
        return spec_params(spec)

    def flops(self, kind: str, spec: ComponentSpec, specs: dict[str, ComponentSpec], seq: int) -> int:
        shapes = call_shapes(specs, batch=1, resolution=self.resolution, sequence_length=seq)  # type: ignore[arg-type]
        # A text encoder's call depends on the family's text module and guidance, not on which denoiser.
        family = family_of(specs["denoiser"])
        key = (spec.name, seq, shapes.guidance, family.name if kind == "text_encoder" else "")
        if key not in self._flops:
            module = meta_module(spec, family)
            self._flops[key] = count_flops(module, meta_inputs(shapes.for_kind(kind)))  # type: ignore[arg-type]
        calls = self.steps if kind == "denoiser" else 1
        return self._flops[key] * calls


def enumerate_shapes(
    budget: float, family: str = "zoo", resolution: int = 512, steps: int = 50, sequence_length: int = 77
) -> tuple[list[Composition], dict[str, int]]:
    """Compositions within ``budget`` parameters, largest first, and how many were left out and why."""
    pools = candidates(family)
    counter = _Counter(resolution, steps)
    found: list[Composition] = []
    skipped = {"over budget": 0, "incompatible": 0, "beyond the position table": 0}
    for te, denoiser, vae in itertools.product(pools["text_encoder"], pools["denoiser"], pools["vae"]):
        seq = sequence_length
        if "max_position_embeddings" in te.config:
            seq = min(seq, te.config["max_position_embeddings"])
        # Cheap bound first: without adaptation, would it fit at all?
        rough = counter.params(te) + counter.params(denoiser) + counter.params(vae)
        if rough > budget * 1.05:
            skipped["over budget"] += 1
            continue
        try:
            shape = compose(te.name, denoiser.name, vae.name, seq)
        except UsageError:
            skipped["incompatible"] += 1
            continue
        specs = shape.specs or {}
        largest = largest_resolution(specs["denoiser"], specs["vae"])
        if largest is not None and resolution > largest:
            skipped["beyond the position table"] += 1  # SD3's learned positions end there
            continue
        params = {kind: counter.params(specs[kind]) for kind in KINDS}
        if sum(params.values()) > budget:
            skipped["over budget"] += 1
            continue
        flops = {kind: counter.flops(kind, specs[kind], specs, seq) for kind in KINDS}
        found.append(Composition(shape, params, flops))
    found.sort(key=lambda c: -c.total_params)
    return found, skipped
