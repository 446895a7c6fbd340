"""How the field re-spent its parameters: every published system in the zoo at its pipeline's own
settings, split into text encoders, denoiser and VAE by parameters, weight bytes and FLOPs per image.

Computed from the configs on the meta device (``sdshape inspect --all``). ``sdshape/data/field.json`` holds
the same table for the torch-free reading side (``sdshape report``); a test checks it against this.
"""

from __future__ import annotations

from typing import Any

# (shape, year of release): the order of the chart, 2022 to 2024.
SYSTEMS = (
    ("sd15", 2022),
    ("sd21", 2022),
    ("sdxl", 2023),
    ("pixart-alpha", 2023),
    ("sd3-medium", 2024),
    ("pixart-sigma", 2024),
    ("flux-dev", 2024),
    ("flux-schnell", 2024),
    ("sd35-large", 2024),
    ("sd35-medium", 2024),
)
PARTS = ("text_encoder", "denoise_loop", "vae_decode")


def field_rows(progress: Any = None) -> list[dict[str, Any]]:
    """One row per system: counts and shares per part, at native resolution and default steps."""
    from sdshape.inspection import inspect_shape
    from sdshape.zoo import get_shape

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
