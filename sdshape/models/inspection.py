"""``sdshape inspect``: the static cost of a shape, from its configs alone (meta device).

Reported per image, as the shape's pipeline runs it: batch 1; under classifier-free guidance the text
encoders and the denoiser see 2 rows (a guidance-distilled or unguided denoiser sees 1); ``steps``
denoiser calls, one VAE decode. Weight bytes count buffers (SD3's position table) beside parameters.
"""

from __future__ import annotations

from typing import Any

from sdshape.core.vocabulary import STAGE_OF_KIND, calls_per_image, weight_bytes_by_precision
from sdshape.models.build import count_buffers, count_params, meta_module
from sdshape.models.call_inputs import call_shapes
from sdshape.models.families import family_of
from sdshape.models.flops import FLOPS_NOTE, flops_by_class, meta_inputs
from sdshape.models.zoo import ShapeSpec, published_shapes, shape_components


def inspect_shape(shape: ShapeSpec, resolution: int, steps: int) -> dict[str, Any]:
    specs = shape_components(shape)
    family = family_of(specs["denoiser"])
    shapes = call_shapes(specs, 1, resolution, shape.sequence_length, shape.guidance_scale)
    stages: dict[str, Any] = {}
    image_split: dict[str, int] = {}
    total_params = total_buffers = 0
    for kind, spec in specs.items():
        module = meta_module(spec, family)
        split = flops_by_class(module, meta_inputs(shapes.for_kind(kind)))
        calls = calls_per_image(kind, steps)
        for name, flops in split.items():
            image_split[name] = image_split.get(name, 0) + flops * calls
        params = count_params(module)
        buffers = count_buffers(module)
        total_params += params
        total_buffers += buffers
        stage = STAGE_OF_KIND[kind]
        stages[stage] = {
            "component": spec.name,
            "source": spec.source,
            "params": params,
            "params_executed": module.executed_params if kind == "vae" else params,
            "buffers": buffers,
            "weight_bytes": weight_bytes_by_precision(params + buffers),
            "call_inputs": {name: list(dims) for name, dims in shapes.for_kind(kind).items()},
            "flops_per_call": sum(split.values()),
            "flops_by_class_per_call": split,
            "calls_per_image": calls,
            "flops_per_image": sum(split.values()) * calls,
        }
    flops_total = sum(stage["flops_per_image"] for stage in stages.values())
    for stage in stages.values():
        stage["param_share"] = stage["params"] / total_params
        stage["flops_share"] = stage["flops_per_image"] / flops_total
        per_call = stage["flops_per_call"] or 1
        stage["flops_class_shares"] = {name: f / per_call for name, f in stage["flops_by_class_per_call"].items()}
    return {
        "shape": shape.name,
        "description": shape.description,
        "resolution": resolution,
        "steps": steps,
        "batch": 1,
        "family": family.name,
        "guidance": shapes.guidance,
        "guidance_scale": shape.guidance_scale,
        "sequence_length": shape.sequence_length,
        "cfg": shapes.guidance == "cfg",
        "flops_note": FLOPS_NOTE,
        "stages": stages,
        "total": {
            "params": total_params,
            "buffers": total_buffers,
            "weight_bytes": weight_bytes_by_precision(total_params + total_buffers),
            "flops_per_image": flops_total,
            "flops_by_class": image_split,
            "flops_class_shares": {name: f / flops_total for name, f in image_split.items()},
        },
    }


# (shape, year of publication): the published systems, in the chart's order (the zoo's ``year`` field).
SYSTEMS = tuple((shape.name, shape.year) for shape in published_shapes())
PARTS = ("text_encoder", "denoise_loop", "vae_decode")


def field_rows(progress: Any = None) -> list[dict[str, Any]]:
    """One row per system: counts and shares per part, at native resolution and default steps."""
    from sdshape.models.zoo import get_shape

    rows = []
    for name, year in SYSTEMS:
        if progress is not None:
            progress(name)
        shape = get_shape(name)
        report = inspect_shape(shape, shape.native_resolution, shape.steps)
        stages = report["stages"]
        total_bytes = report["total"]["weight_bytes"]["bf16"]
        rows.append(
            {
                "shape": name,
                "year": year,
                "description": shape.description,
                "family": report["family"],
                "resolution": report["resolution"],
                "steps": report["steps"],
                "guidance": report["guidance"],
                "components": {part: stages[part]["component"] for part in PARTS},
                "params": {part: stages[part]["params"] for part in PARTS},
                "buffers": {part: stages[part]["buffers"] for part in PARTS},
                "weight_bytes_bf16": {part: stages[part]["weight_bytes"]["bf16"] for part in PARTS},
                "flops_per_image": {part: stages[part]["flops_per_image"] for part in PARTS},
                "param_share": {part: stages[part]["param_share"] for part in PARTS},
                "weight_share": {part: stages[part]["weight_bytes"]["bf16"] / total_bytes for part in PARTS},
                "flops_share": {part: stages[part]["flops_share"] for part in PARTS},
            }
        )
    return rows
