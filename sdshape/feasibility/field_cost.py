"""What each published system costs on one card, by the static model, for ``sdshape inspect --all --quality``.

Each system is judged by ``sdshape.feasibility.fit.fit`` exactly as ``sdshape fit SYSTEM --gpu CARD
--precision P`` judges it: its pipeline's own resolution and steps, batch 1, eager on a desktop host, the least
intrusive residency policy that fits (VAE tiling after each policy without it), the peak VRAM under that policy
and seconds per image with the band its validation class found. No second cost model: this module only picks
the fields the quality table shows. ``python maintainer/field_cost.py`` commits the default card's answer to
``sdshape/data/field_cost.json`` so that ``sdshape report`` can show it without torch.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from sdshape.feasibility.catalog import GPU
from sdshape.feasibility.fit import fit
from sdshape.feasibility.formats import WeightFormat
from sdshape.feasibility.time_model import DEFAULT_HOST, TimeModel
from sdshape.models.inspection import SYSTEMS
from sdshape.models.zoo import get_shape

# The card the quality table prices on unless told: the largest consumer card of the catalog's Ada
# generation, where every system but the 12-17 B-parameter ones fits resident in bf16.
DEFAULT_CARD = "RTX 4090"
DEFAULT_PRECISION = "bf16"  # the precision the systems are published and usually run in
CARD_KEYS = ("fits", "supported", "unsupported_reason", "policy", "vae_tiling", "peak_bytes_under_policy",
             "seconds_per_image", "seconds_band", "band_classes", "bound", "calibrated")  # fmt: skip


def field_costs(
    gpu: GPU,
    fmt: WeightFormat,
    model: TimeModel,
    backend: str = "eager",
    host: str = DEFAULT_HOST,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every system of ``SYSTEMS`` on ``gpu`` in ``fmt`` (``fit``'s answer, trimmed), with the conditions."""
    import torch

    from sdshape import __version__

    systems, answer = {}, None
    for name, _year in SYSTEMS:
        shape = get_shape(name)
        if progress:
            progress(f"{name}: {shape.native_resolution} px, {shape.steps} steps on {gpu.name}")
        answer = fit(shape, [gpu], model, fmt, shape.native_resolution, shape.steps, 1, backend, host=host,
                     progress=progress, search=False)  # fmt: skip
        card = answer["cards"][0]
        systems[name] = {
            **{key: card.get(key) for key in CARD_KEYS},
            "peak_bytes": card.get("peak_bytes_under_policy"),  # under the chosen policy; None if none fits
            "peak_bytes_all_resident": card["peak_bytes"],
            "weight_bytes": {stage: s["weight_bytes"] for stage, s in answer["stages"].items()},
        }
    assert answer is not None  # SYSTEMS is not empty
    return {
        "label": "model (static memory trace, calibrated roofline), not measurement; the same answer as `sdshape fit`",
        "card": gpu.name,
        "vram_bytes": gpu.vram_bytes,
        "architecture": gpu.architecture,
        "precision": fmt.name,
        "precision_note": fmt.description,
        "backend": backend,
        "host": host,
        "batch": 1,
        "context_bytes": answer["context_bytes"],
        "time_model": answer["time_model"],
        "generated": datetime.date.today().isoformat(),
        "sdshape": __version__,
        "torch": torch.__version__,
        "systems": systems,
    }
