"""``sdshape shapes --gpu CARD``: every composition within a budget priced on a catalog card by the static model.

At full size and without a GPU: each composition is traced on the meta device (each distinct component once,
``sdshape.feasibility.component_cache``) and judged as ``sdshape fit`` judges a shape (``fit_card``): the
least intrusive residency policy that fits the card (VAE tiling after each policy without it), the peak VRAM
under it, seconds per image with the band its validation class found, and what bounds it.

What bounds it: ``fit`` reports ``link`` (unhidden transfers take over half the batch), ``host`` (the
denoising step's kernel launches outlast its kernels) or ``gpu``. Here ``gpu`` is split by the same per-op
roofline the projection sums (``sdshape.feasibility.timing``): the denoising step's kernel time in ops whose
FLOPs over the tensor rate outlast their bytes over the bandwidth is *compute*, the rest (memory-bound ops,
tensor ops starved of bandwidth, a quantized format's dequantization) is *bandwidth*; the larger names the
bound. A budget in bytes counts the weights as the static model stores them in the chosen precision
(``sdshape.feasibility.formats``: quantized layers at their format's bytes, the rest at the compute dtype, a
VAE the pipeline upcasts in fp32).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from sdshape.core import units
from sdshape.core.vocabulary import KINDS, STAGE_OF_KIND
from sdshape.feasibility.catalog import GPU
from sdshape.feasibility.component_cache import ComponentTraces
from sdshape.feasibility.fit import CANDIDATES, Traced, candidate_name, fit_card
from sdshape.feasibility.formats import WeightFormat
from sdshape.feasibility.static import ShapeStatic
from sdshape.feasibility.time_model import DEFAULT_HOST, Projection, TimeModel, project
from sdshape.feasibility.timing import ArchEfficiency, wave_fraction
from sdshape.feasibility.trace import Trace
from sdshape.models.zoo import ComponentSpec, all_shapes, shape_components
from sdshape.shapes.compositions import _NOT_ARCHITECTURE, Composition


def least_bytes_per_param(fmt: WeightFormat) -> float:
    """A floor on a format's stored bytes per parameter (the narrowest tensor it stores): compositions above
    ``bytes / floor`` parameters cannot fit a byte budget and are never traced."""
    width = torch.empty((), dtype=fmt.compute_dtype).element_size()
    if not fmt.quantized:
        return float(width)
    if fmt.gguf_block is not None:
        elements, nbytes = fmt.gguf_block
        return min(width, nbytes / elements)
    return min(width, 0.5 if fmt.name == "nf4" else 1.0)


def _architecture(spec: ComponentSpec) -> tuple:
    return spec.library_class, sorted((k, repr(v)) for k, v in spec.config.items() if k not in _NOT_ARCHITECTURE)


def zoo_match(composition: Composition) -> str | None:
    """The published zoo system this composition is (its three components' architectures), if any."""
    mine = composition.shape.specs or {}
    for name, shape in all_shapes().items():
        theirs = shape_components(shape)
        if all(_architecture(mine[k]) == _architecture(theirs[k]) for k in KINDS):
            return name
    return None


def gpu_split(trace: Trace, gpu: GPU, efficiency: ArchEfficiency, fp32: bool) -> tuple[float, float]:
    """One traced call's kernel seconds as ``timing.gpu_seconds`` sums them, split into (compute-bound ops,
    bandwidth-bound ops)."""
    rate = gpu.tensor_flops * efficiency.factor * (0.5 if fp32 else 1.0)
    bandwidth = gpu.bandwidth_gbs * 1e9 * efficiency.factor
    compute = memory = 0.0
    for op in trace.ops:
        memory_s = op.bytes_moved / bandwidth
        if op.kind == "memory" or not op.flops:
            memory += memory_s
            continue
        flops_s = op.flops / (rate * wave_fraction(op.tiles, gpu.sms) * op.padding)
        if flops_s >= memory_s:
            compute += flops_s
        else:
            memory += memory_s
    return compute, memory


def bound_of(projection: Projection, static: ShapeStatic, gpu: GPU, efficiency: ArchEfficiency) -> str:
    """``link``, ``host``, ``compute`` or ``bandwidth``: ``Projection.bound`` with its ``gpu`` split (module
    docstring)."""
    found = projection.bound
    if found != "gpu":
        return found
    stage = static.stages["denoise_loop"]
    compute, memory = gpu_split(stage.trace, gpu, efficiency, stage.dtype == "float32")
    memory += max(0.0, projection.stages["denoise_loop"].gpu_s - compute - memory)  # dequantization kernels
    return "compute" if compute >= memory else "bandwidth"


def _shares(values: dict[str, float]) -> dict[str, float | None]:
    total = sum(values.values())
    return {k: (v / total if total else None) for k, v in values.items()}


def price_card(traced: Traced, gpu: GPU, model: TimeModel, backend: str, host: str) -> dict[str, Any]:
    """One composition on one card: fit's choice and figures, the bound split, and where the time goes."""
    card = fit_card(traced, gpu, model, backend, CANDIDATES, host)
    entry: dict[str, Any] = {
        "gpu": gpu.name,
        "fits": card["fits"],
        "supported": card["supported"],
        "unsupported_reason": card["unsupported_reason"],
        "policy": card["policy"],
        "vae_tiling": card["vae_tiling"],
        "peak_bytes_all_resident": card["peak_bytes"],
        # every candidate's peak in fit's order (least intrusive first): the chosen one is the first that fits
        "peak_bytes_by_candidate": {
            candidate_name(p, t): card["peak_bytes_by_policy_vae_tiling" if t else "peak_bytes_by_policy"][p]
            for p, t in CANDIDATES
        },
        "peak_bytes": card.get("peak_bytes_under_policy"),
        "fits_with_context_bytes": (card["peak_bytes_under_policy"] + card["context_bytes"]) if card["fits"] else None,
        "vram_bytes": gpu.vram_bytes,
        "seconds_per_image": card["seconds_per_image"],
        "seconds_band": card["seconds_band"],
        "band_classes": card.get("band_classes"),
        "bound_fit": card["bound"],
        "bound": None,
        "link_s_per_image": card.get("link_s_per_image"),
        "seconds_by_kind": None,
        "time_shares": None,
        "calibrated": card["calibrated"],
    }
    if not card["fits"]:
        return entry
    policy, tiling = card["policy"], card["vae_tiling"]
    static = traced.static(tiling)
    efficiency = model.efficiency(gpu)[0]
    projection = project(static, gpu, model, backend, policy, efficiency, host, traced.fmt)
    stages = projection.stages
    seconds = {
        "text_encoder": stages["text_encoder"].seconds / static.batch,
        "denoiser": projection.steps * stages["denoise_loop"].seconds / static.batch,
        "vae": stages["vae_decode"].seconds / static.batch,
    }
    entry.update(bound=bound_of(projection, static, gpu, efficiency), seconds_by_kind=seconds,
                 time_shares=_shares(seconds))  # fmt: skip
    return entry


def price(
    compositions: list[Composition],
    gpus: list[GPU],
    model: TimeModel,
    fmt: WeightFormat,
    resolution: int,
    steps: int,
    budget_bytes: int | None = None,
    backend: str = "eager",
    host: str = DEFAULT_HOST,
    vae_fp16: bool = False,
    progress: Callable[[str], None] | None = None,
    traces: ComponentTraces | None = None,
) -> tuple[list[tuple[Composition, dict[str, Any]]], int, ComponentTraces]:
    """Each composition priced on each card (``priced`` entries of a shapes document), those whose stored
    weights exceed ``budget_bytes`` left out (their count returned); the traces made, for the record."""
    traces = traces or ComponentTraces(progress)
    floor = least_bytes_per_param(fmt)
    priced, over = [], 0
    for number, composition in enumerate(compositions, start=1):
        if budget_bytes is not None and composition.total_params * floor > budget_bytes:
            over += 1  # cannot fit in any storage of this format: not traced
            continue
        if progress:
            progress(f"pricing {number}/{len(compositions)}: {composition.shape.name}")
        shape = composition.shape
        full = traces.shape(shape, resolution, steps, 1, fmt, vae_fp16)
        stored = {kind: full.stages[STAGE_OF_KIND[kind]].weight_bytes for kind in KINDS}
        if budget_bytes is not None and sum(stored.values()) > budget_bytes:
            over += 1
            continue
        traced = Traced(fmt, full, traces.shape(shape, resolution, steps, 1, fmt, vae_fp16, tiled=True))
        entry = {
            "zoo": zoo_match(composition),
            "stored_weight_bytes": sum(stored.values()),
            "stored_bytes_by_kind": stored,
            "byte_shares": _shares(stored),  # type: ignore[arg-type]
            "cards": {gpu.name: price_card(traced, gpu, model, backend, host) for gpu in gpus},
        }
        priced.append((composition, entry))
    return priced, over, traces


# The priced table's columns: (header, what each row says), the same for the terminal and shapes.md.
COLUMNS = ("composition", "zoo", "params", "stored weights", "params te/den/vae", "bytes te/den/vae",
           "policy", "peak VRAM", "s/image", "band", "time te/den/vae", "bound")  # fmt: skip


def _triple(shares: dict[str, float | None] | None) -> str:
    return " / ".join(units.share(shares[k]) for k in KINDS) if shares else "-"


def priced_rows(document: dict[str, Any], card: str) -> list[dict[str, Any]]:
    """The table's rows for one card, read from the document alone (the table, shapes.md and the JSON agree)."""
    rows = []
    for shape in document["shapes"]:
        priced = shape.get("priced")
        if not priced:
            continue
        entry = priced["cards"][card]
        policy = entry["policy"]
        if policy and entry["vae_tiling"]:
            policy += " +vae tiling"
        seconds, band = entry["seconds_per_image"], entry["seconds_band"]
        rows.append({
            "composition": shape["name"],
            "zoo": priced["zoo"] or "",
            "params": units.count(shape["params"]),
            "stored weights": units.size(priced["stored_weight_bytes"]),
            "params te/den/vae": _triple(shape["param_shares"]),
            "bytes te/den/vae": _triple(priced["byte_shares"]),
            "policy": policy or ("unsupported" if not entry["supported"] else "does not fit"),
            "peak VRAM": units.size(entry["peak_bytes"]),
            "s/image": f"{seconds:.2f}" if seconds is not None else "-",
            "band": f"{band[0]:.2f}-{band[1]:.2f}" if band else "-",
            "time te/den/vae": _triple(entry["time_shares"]),
            "bound": entry["bound"] or "-",
        })  # fmt: skip
    return rows


def title(document: dict[str, Any], card: str) -> str:
    conditions = document["priced_conditions"]
    budget = [f"{document['budget']:.3g} parameters"] if document.get("budget") else []
    if conditions.get("budget_bytes"):
        budget.append(f"{units.size(conditions['budget_bytes'])} of {conditions['precision']} weights")
    return (
        f"compositions within {' and '.join(budget)} on {card}: {document['resolution']} px, "
        f"{document['steps']} steps, batch 1, CFG, {conditions['precision']}, {conditions['backend']}; "
        "model, not measurement"
    )


CAPTION = (
    "policy: the least intrusive that fits (fit's order; VAE tiling after each policy without it); peak: torch's "
    "allocated peak under it, and it fits when peak + {context} CUDA context is within the card. s/image with the "
    "band its validation class found. Shares te/den/vae: text encoder, denoiser, VAE (time: the denoiser's steps "
    "together; link time apart). bound: link, host, compute or bandwidth (the denoising step's)."
)


def markdown(document: dict[str, Any]) -> str:
    """shapes.md: the priced table per card, from the same rows as the terminal's."""
    lines = ["# Compositions priced by the static model", ""]
    context = units.size(document["priced_conditions"]["context_bytes"])
    for card in document["priced_conditions"]["cards"]:
        lines += [f"## {card['name']}", "", title(document, card["name"]), ""]
        lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for row in priced_rows(document, card["name"]):
            lines.append("| " + " | ".join(str(row[c]) for c in COLUMNS) + " |")
        lines += ["", CAPTION.format(context=context), ""]
    skipped = document["skipped"]
    lines.append("Left out: " + ", ".join(f"{n} {why}" for why, n in skipped.items() if n) + ".")
    if "comparison" in document:  # --measure: the priced table's first compositions beside the model
        from sdshape.shapes.beside import markdown_section

        lines += ["", *markdown_section(document)]
    return "\n".join(lines) + "\n"
