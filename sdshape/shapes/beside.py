"""``sdshape shapes --gpu CARD --measure``: the priced table's first compositions measured, beside the model.

The static model prices every composition on a catalog card; measuring them all would spend a GPU's time on
compositions nobody would pick. So the priced table (largest first, as ``priced_rows`` lists it) chooses: the
first ``--top N`` compositions the model fits on the card are measured, and each one's measured seconds per
image and peak are shown beside the model's seconds (with the band its validation class found) and its
all-resident peak (the explorer measures everything resident).

An agreement verdict needs the measurement to have run on the card the model priced: a CPU's or another
card's seconds say nothing about the model's accuracy, so then both are shown and no verdict is given. The
verdict is the measured median inside the model's band; it is also withheld when the model chose another
residency policy than the measurement's all-resident one, or when the measured backend has no counterpart
in the model.
"""

from __future__ import annotations

from typing import Any

from sdshape.core import units
from sdshape.core.vocabulary import DEFAULT_POLICY
from sdshape.feasibility.catalog import GPU, match_measured
from sdshape.shapes.compositions import Composition

DEFAULT_TOP = 5
RANKED_BY = "the priced table's order (largest first), compositions the model fits on the card"


def model_backend(name: str, options: dict[str, Any]) -> tuple[str, bool]:
    """The model's backend for a measured one, and whether it is the same thing.

    The model knows eager (a host launch per kernel) and compile (torch.compile reduce-overhead: CUDA-graph
    replay, no host time). Eager CUDA-graph replay is the latter's launch cost with eager's kernels.
    """
    if name == "eager":
        return ("compile" if options.get("cuda_graph") else "eager"), True
    if name == "compile" and options.get("compile_mode") in ("reduce-overhead", "max-autotune"):
        return "compile", True
    return "eager", False


def ranked_first(priced: list[tuple[Composition, dict[str, Any]]], card: str, top: int) -> list[Composition]:
    """The first ``top`` compositions of the priced table that the model fits on ``card`` (with seconds)."""
    fitting = [c for c, entry in priced if entry["cards"][card]["seconds_per_image"] is not None]
    return fitting[:top]


def device_of(machine: dict[str, Any], catalog: dict[str, GPU], card: str) -> dict[str, Any]:
    """Where the measurement ran, named as NVML/torch name it, its catalog card if any, and whether it is
    ``card``."""
    if machine.get("device") == "cuda":
        name = machine.get("gpu_name") or "an unnamed CUDA device"
        found = match_measured(catalog, machine.get("gpu_name"), machine.get("gpu_memory_bytes"))
        return {"device": "cuda", "device_name": name, "device_card": found.name if found else None,
                "same_card": found is not None and found.name == card}  # fmt: skip
    return {"device": machine.get("device") or "cpu", "device_name": machine.get("cpu_model") or "a CPU",
            "device_card": None, "same_card": False}  # fmt: skip


def statement(card: str, device: dict[str, Any]) -> str:
    """One sentence: what was priced, where it was measured, and whether agreement can be judged."""
    if device["same_card"]:
        return (
            f"the model priced {card} and the measurement ran on it ({device['device_name']}): agreement is the "
            "measured median inside the model's band"
        )
    where = f"the CPU {device['device_name']}" if device["device"] != "cuda" else device["device_name"]
    if device["device"] == "cuda":
        where += f" (catalog: {device['device_card']})" if device["device_card"] else " (not in the catalog)"
    return f"the model priced {card}; the measurement ran on {where}: both are shown, and no agreement is claimed"


def against_model(shape: dict[str, Any], card: str, same_card: bool, backend_matches: bool) -> dict[str, Any]:
    """One measured composition's figures beside the model's on ``card`` (``shapes[i].measured.against_model``)."""
    entry = shape["priced"]["cards"][card]
    measured = shape["measured"]
    seconds, band = entry["seconds_per_image"], entry["seconds_band"]
    measured_s, measured_peak = measured.get("seconds_per_image"), measured.get("peak_bytes")
    model_peak = entry["peak_bytes_all_resident"]
    reason = None
    if not same_card:
        reason = "not measured on the priced card"
    elif measured.get("status") != "ok" or measured_s is None:
        reason = "the measurement did not complete"
    elif entry["policy"] != DEFAULT_POLICY or entry["vae_tiling"]:
        tiling = " with VAE tiling" if entry["vae_tiling"] else ""
        reason = f"the model chose {entry['policy']}{tiling}; measured all resident"
    elif not backend_matches:
        reason = "the measured backend has no counterpart in the model"
    within = None if reason else band[0] <= measured_s <= band[1]
    return {
        "card": card,
        "model_seconds_per_image": seconds,
        "model_band": band,
        "model_policy": entry["policy"],
        "model_peak_bytes_all_resident": model_peak,
        "measured_seconds_per_image": measured_s,
        "measured_ci_s": measured.get("ci_s"),
        "measured_peak_bytes": measured_peak,
        # ratios only where they say something about the model: the same card
        "seconds_ratio": measured_s / seconds if same_card and measured_s and seconds else None,
        "peak_ratio": measured_peak / model_peak if same_card and measured_peak and model_peak else None,
        "within_band": within,
        "verdict": None if within is None else ("within the band" if within else "outside the band"),
        "no_verdict_because": reason,
    }


BESIDE_COLUMNS = ("composition", "model s/image", "model band", "measured s/image", "±CI", "model peak (resident)",
                  "measured peak")  # fmt: skip
SAME_CARD_COLUMNS = ("measured/model s", "measured/model peak", "verdict")


def beside_rows(document: dict[str, Any]) -> tuple[tuple[str, ...], list[dict[str, str]]]:
    """The side-by-side table's columns and rows, from the document alone (terminal and shapes.md agree)."""
    same = document["comparison"]["same_card"]
    columns = BESIDE_COLUMNS + (SAME_CARD_COLUMNS if same else ())
    rows = []
    for shape in document["shapes"]:
        pair = (shape.get("measured") or {}).get("against_model")
        if not pair:
            continue
        band, measured_s, half = pair["model_band"], pair["measured_seconds_per_image"], pair["measured_ci_s"]
        row = {
            "composition": shape["name"],
            "model s/image": units.seconds(pair["model_seconds_per_image"]),
            "model band": f"{units.seconds(band[0])}-{units.seconds(band[1])}" if band else "-",
            "measured s/image": units.seconds(measured_s),
            "±CI": f"±{half / measured_s:.1%}" if measured_s and half is not None else "-",
            "model peak (resident)": units.size(pair["model_peak_bytes_all_resident"]),
            "measured peak": units.size(pair["measured_peak_bytes"]),
        }
        if same:
            ratios = pair["seconds_ratio"], pair["peak_ratio"]
            row["measured/model s"], row["measured/model peak"] = (f"{r:.2f}" if r else "-" for r in ratios)
            row["verdict"] = pair["verdict"] or f"none: {pair['no_verdict_because']}"
        rows.append(row)
    return columns, rows


def beside_title(document: dict[str, Any]) -> str:
    comparison, conditions = document["comparison"], document["measured_conditions"]
    return (
        f"the first {comparison['measured']} of the priced table measured ({comparison['ranked_by']}): "
        f"{document['resolution']} px, {document['steps']} steps, batch 1, CFG; model {comparison['model_backend']} "
        f"{document['priced_conditions']['precision']} on {comparison['card']}, measured {conditions['backend']} "
        f"{conditions['precision']} on {conditions['device_name']}, {conditions['rounds']} rounds per component"
    )


def markdown_section(document: dict[str, Any]) -> list[str]:
    """shapes.md's side-by-side section: the same rows as the terminal's."""
    columns, rows = beside_rows(document)
    lines = ["## Measured beside the model", "", beside_title(document), "", document["comparison"]["statement"], ""]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row[c] for c in columns) + " |" for row in rows]
    return [*lines, "", MEASURED_CAPTION]


MEASURED_CAPTION = (
    "measured: each distinct component timed once and composed (text encoder once, the denoiser's steps, the "
    "VAE once); measured peak: weights plus the largest activation peak, all resident. model peak: the static "
    "model's all-resident peak. The verdict (same card only): the measured median inside the model's band."
)
