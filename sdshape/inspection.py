"""``sdshape inspect``: the static cost of a shape, from its configs alone (meta device).

Reported per image: batch 1, classifier-free guidance (text encoder and UNet
see 2 rows), ``steps`` UNet calls, one VAE decode.
"""

from __future__ import annotations

from typing import Any

from sdshape.build import count_params, meta_module
from sdshape.call_inputs import call_shapes
from sdshape.flops import FLOPS_NOTE, flops_per_call
from sdshape.vocabulary import STAGE_OF_KIND, calls_per_image, weight_bytes_by_precision
from sdshape.zoo import ShapeSpec, shape_components


def inspect_shape(shape: ShapeSpec, resolution: int, steps: int) -> dict[str, Any]:
    specs = shape_components(shape)
    shapes = call_shapes(specs, batch=1, resolution=resolution, sequence_length=shape.sequence_length)
    per_call = flops_per_call(specs, shapes)
    stages: dict[str, Any] = {}
    total_params = 0
    for kind, spec in specs.items():
        module = meta_module(spec)
        params = count_params(module)
        total_params += params
        stage = STAGE_OF_KIND[kind]
        stages[stage] = {
            "component": spec.name,
            "source": spec.source,
            "params": params,
            "params_executed": module.executed_params if kind == "vae" else params,
            "weight_bytes": weight_bytes_by_precision(params),
            "call_inputs": {name: list(dims) for name, dims in shapes.for_kind(kind).items()},
            "flops_per_call": per_call[kind],
            "calls_per_image": calls_per_image(kind, steps),
            "flops_per_image": per_call[kind] * calls_per_image(kind, steps),
        }
    flops_total = sum(stage["flops_per_image"] for stage in stages.values())
    for stage in stages.values():
        stage["param_share"] = stage["params"] / total_params
        stage["flops_share"] = stage["flops_per_image"] / flops_total
    return {
        "shape": shape.name,
        "description": shape.description,
        "resolution": resolution,
        "steps": steps,
        "batch": 1,
        "cfg": True,
        "flops_note": FLOPS_NOTE,
        "stages": stages,
        "total": {
            "params": total_params,
            "weight_bytes": weight_bytes_by_precision(total_params),
            "flops_per_image": flops_total,
        },
    }
