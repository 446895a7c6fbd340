"""``sdshape inspect``: the static cost of a shape, from its configs alone (meta device).

Reported per image: batch 1, classifier-free guidance (text encoder and UNet
see 2 rows), ``steps`` UNet calls, one VAE decode.
"""

from __future__ import annotations

from typing import Any

from sdshape.build import count_params, meta_module
from sdshape.flops import FLOPS_NOTE, flops_per_call
from sdshape.shapes import call_shapes
from sdshape.zoo import ShapeSpec, shape_components

BYTES_PER_PARAM = {"fp32": 4, "fp16": 2, "bf16": 2}
STAGE_OF_KIND = {"text_encoder": "text_encoder", "unet": "unet_loop", "vae": "vae_decode"}


def inspect_shape(shape: ShapeSpec, resolution: int, steps: int) -> dict[str, Any]:
    specs = shape_components(shape)
    shapes = call_shapes(specs, batch=1, resolution=resolution, sequence_length=shape.sequence_length)
    per_call = flops_per_call(specs, shapes)
    calls = {"text_encoder": 1, "unet": steps, "vae": 1}
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
            "weight_bytes": {precision: params * size for precision, size in BYTES_PER_PARAM.items()},
            "call_inputs": {name: list(dims) for name, dims in shapes.for_kind(kind).items()},
            "flops_per_call": per_call[kind],
            "calls_per_image": calls[kind],
            "flops_per_image": per_call[kind] * calls[kind],
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
            "weight_bytes": {p: total_params * s for p, s in BYTES_PER_PARAM.items()},
            "flops_per_image": flops_total,
        },
    }
