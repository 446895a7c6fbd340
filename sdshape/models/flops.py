"""FLOP counts per stage call, on the meta device (no memory, no compute).

``torch.utils.flop_counter`` counts matmuls, convolutions and attention, with
1 multiply-accumulate = 2 FLOPs. Elementwise work (norms, activations, the
scheduler update) is not counted; for these models it is well under 1% of the
FLOPs, though not of the time.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from sdshape.models.build import meta_module
from sdshape.models.call_inputs import INTEGER_INPUTS, CallShapes
from sdshape.models.families import family_of
from sdshape.models.zoo import ComponentKind, ComponentSpec

FLOPS_NOTE = "torch.utils.flop_counter on the meta device; 1 MAC = 2 FLOPs; elementwise ops not counted"


def meta_inputs(shapes: dict[str, tuple[int, ...]], dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    """A stage call's inputs on the meta device: token ids and masks as integers, the rest in ``dtype``."""
    return tuple(
        torch.zeros(shape, dtype=torch.long if name in INTEGER_INPUTS else dtype, device="meta")
        for name, shape in shapes.items()
    )


def count_flops(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*inputs)
    return int(counter.get_total_flops())


def flop_class(op: str) -> str:
    """The class of a counted op. On the meta device attention is decomposed: its score and value
    products are the batched matmuls (``bmm``), which nothing else in these models uses; ``mm`` and
    ``addmm`` are the linear projections and MLPs."""
    name = op.lower()
    if "conv" in name:
        return "convolution"
    if "bmm" in name or "attention" in name:
        return "attention"
    return "gemm" if "mm" in name else "other"


def flops_by_class(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> dict[str, int]:
    """FLOPs of one call, split into attention, convolution and GEMM (and anything else counted)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*inputs)
    split: dict[str, int] = {}
    for op, flops in counter.get_flop_counts()["Global"].items():
        kind = flop_class(str(op))
        split[kind] = split.get(kind, 0) + int(flops)
    return split


def flops_per_call(
    specs: dict[ComponentKind, ComponentSpec], shapes: CallShapes, strict: bool = True
) -> dict[ComponentKind, int | None]:
    """FLOPs of one call of each stage module at these shapes.

    With ``strict=False`` a component that cannot be traced at these shapes
    gets ``None``: the measured run will then show the real error in its own
    row, instead of one counting failure taking down every stage.
    """
    counts: dict[ComponentKind, int | None] = {}
    family = family_of(specs["denoiser"])
    for kind, spec in specs.items():
        try:
            counts[kind] = count_flops(meta_module(spec, family), meta_inputs(shapes.for_kind(kind)))
        except Exception:
            if strict:
                raise
            counts[kind] = None
    return counts
