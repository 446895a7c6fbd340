"""The feasibility matrix of the static model: every named shape users ask about, at its pipeline's own
settings, on every catalog card. ``python maintainer/feasibility_matrix.py`` writes it to
``sdshape/data/feasibility_matrix.json``, which ``sdshape report`` reads (without torch) and the README shows.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from sdshape.models.zoo import published_shapes

MATRIX_SHAPES = tuple(shape.name for shape in published_shapes())  # the zoo's published systems, by year
MATRIX_FILE = Path(__file__).resolve().parents[1] / "data" / "feasibility_matrix.json"
CARD_KEYS = ("gpu", "fits", "policy", "vae_tiling", "peak_bytes", "seconds_per_image", "seconds_band", "loop_it_s",
             "bound", "supported", "calibrated", "best")  # fmt: skip


def build_matrix(progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    import torch

    from sdshape import __version__
    from sdshape.feasibility.catalog import load_catalog
    from sdshape.feasibility.fit import fit
    from sdshape.feasibility.formats import weight_format
    from sdshape.feasibility.time_model import bundled_time_model
    from sdshape.models.zoo import get_shape

    model, gpus = bundled_time_model(), list(load_catalog().values())
    rows = []
    for name in MATRIX_SHAPES:
        shape = get_shape(name)
        if progress:
            progress(f"{name}: {shape.native_resolution} px, {shape.steps} steps")
        answer = fit(shape, gpus, model, weight_format("fp16"), shape.native_resolution, shape.steps, 1,
                     progress=progress)  # fmt: skip
        rows.append({
            "shape": name, "resolution": answer["resolution"], "steps": answer["steps"], "precision": "fp16",
            "guidance": answer["guidance"], "cards": [{k: card[k] for k in CARD_KEYS} for card in answer["cards"]],
        })  # fmt: skip
    return {
        "label": (
            "model (static memory trace, calibrated roofline); batch 1, eager on a desktop host, each pipeline's "
            "defaults; per card the least intrusive policy in fp16, and the fastest format and policy that fit"
        ),
        "generated": datetime.date.today().isoformat(),
        "sdshape": __version__,
        "torch": torch.__version__,
        "time_model": {"host": model.host("desktop").source, "bands": model.band_sources},
        "rows": rows,
    }


def committed_matrix() -> dict[str, Any]:
    """The matrix as committed (no torch needed)."""
    return json.loads(resources.files("sdshape.data").joinpath("feasibility_matrix.json").read_text())


POLICY_ABBREVIATIONS = {
    "all_resident": "R",
    "text_encoders_dropped": "TE",
    "model_offload": "M",
    "group_offload_block_stream": "Gs",
    "group_offload_block": "G",
    "group_offload_leaf_stream": "Ls",
    "group_offload_leaf": "L",
    "sequential_offload": "S",
}


def _short(policy: str, tiling: bool) -> str:
    return POLICY_ABBREVIATIONS[policy] + ("+t" if tiling else "")


def matrix_markdown(matrix: dict[str, Any], best_only: bool = False) -> str:
    """The matrix as the README and docs show it: per card and shape, fp16's least intrusive fit and the fastest
    format and policy that fit (``best_only``: the fastest alone)."""
    rows = matrix["rows"]
    lines = ["| card | " + " | ".join(r["shape"] for r in rows) + " |", "|---" * (len(rows) + 1) + "|"]
    for index, first in enumerate(rows[0]["cards"]):
        cells = []
        for row in rows:
            card = row["cards"][index]
            best = card.get("best")
            fastest = (
                f"{best['precision']} {_short(best['policy'], best['vae_tiling'])} {best['seconds_per_image']:.1f} s"
                if best
                else "no fit"
            )
            if best_only:
                cells.append(fastest)
                continue
            plain = (
                f"{_short(card['policy'], card.get('vae_tiling') or False)} {card['seconds_per_image']:.1f} s"
                if card["fits"]
                else ("unsupported" if not card["supported"] else "no fit")
            )
            cells.append(f"{plain}; {fastest}")
        lines.append(f"| {first['gpu']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
