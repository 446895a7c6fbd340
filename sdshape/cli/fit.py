"""``sdshape fit``: which cards a shape fits, under which policy, how fast; from the static model alone."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from sdshape.core import units
from sdshape.core.errors import UsageError


def cmd_fit(args: argparse.Namespace, console: Console) -> int:
    from sdshape.config.limits import check_resolution, check_shape_resolution
    from sdshape.core.errors import choices_error
    from sdshape.feasibility.catalog import load_catalog, pick
    from sdshape.feasibility.fit import fit
    from sdshape.feasibility.formats import weight_format
    from sdshape.feasibility.time_model import BACKENDS, bundled_time_model
    from sdshape.models.zoo import get_shape, shape_components

    shape = get_shape(args.shape)
    check_resolution(args.resolution)
    fmt = weight_format(args.precision)
    if args.backend not in BACKENDS:
        raise choices_error("backend", args.backend, list(BACKENDS))
    steps = shape.steps if args.steps is None else args.steps
    for flag, value in (("--steps", steps), ("--batch", args.batch)):
        if value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    gpus = pick(load_catalog(args.gpu_catalog), args.gpu)
    resolution = args.resolution or shape.native_resolution
    check_shape_resolution(shape_components(shape), resolution)
    model = bundled_time_model()
    if args.host not in model.hosts:
        raise choices_error("host", args.host, list(model.hosts))
    if args.json:
        answer = fit(shape, gpus, model, fmt, resolution, steps, args.batch, args.backend,
                     args.policy, args.vae_fp16, host=args.host)  # fmt: skip
        print(json.dumps(answer, indent=2))
        return 0
    with console.status("tracing on the meta device") as status:
        answer = fit(shape, gpus, model, fmt, resolution, steps, args.batch, args.backend,
                     args.policy, args.vae_fp16, progress=status.update, host=args.host)  # fmt: skip
    console.print(fit_table(answer))
    console.print(best_table(answer))
    return 0


def fit_table(answer: dict) -> Table:
    table = Table(
        title=(
            f"{answer['shape']}: {answer['resolution']} px, {answer['steps']} steps, batch {answer['batch']}, "
            f"{answer['precision']} ({answer['precision_note']}), {answer['backend']}; model, not measurement"
        ),
        caption=(
            f"peak = torch allocated peak (weights + traced activations); fits = peak + "
            f"{units.size(answer['context_bytes'])} CUDA context within the card; host RAM: the weights the policy "
            f"keeps on the host. Seconds carry the band the validation found for their class (resident, offload, "
            f"format, batch). Host ({answer['host']}): {answer['time_model']['host']}."
        ),
    )
    for column in ("card", "VRAM", "fits", "policy", "peak all resident", "peak under policy", "host RAM",
                   "s/image", "s/batch", "band", "loop it/s", "bound"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("card", "fits", "policy", "bound") else "right")
    for card in answer["cards"]:
        seconds = card["seconds_per_image"]
        policy = card["policy"]
        table.add_row(
            card["gpu"],
            units.size(card["vram_bytes"]),
            "yes" if card["fits"] else ("unsupported" if not card["supported"] else "no"),
            (policy + (" +vae tiling" if card["vae_tiling"] else "")) if policy else "-",
            units.size(card["peak_bytes"]),
            units.size(card["peak_bytes_under_policy"]) if policy else "-",
            units.size(card["host_bytes_by_policy"][policy]) if policy else "-",
            f"{seconds:.2f}" if seconds is not None else "-",
            f"{card['seconds_per_batch']:.2f}" if seconds is not None else "-",
            f"{card['seconds_band'][0]:.2f}-{card['seconds_band'][1]:.2f}" if seconds is not None else "-",
            f"{card['loop_it_s']:.1f}" if card["loop_it_s"] else "-",
            (card["bound"] or "-") + ("" if card["calibrated"] else " (uncalibrated arch)"),
        )
    return table


def best_table(answer: dict) -> Table:
    """Per card, the fastest weight format and policy that fit, with the format's measured parity error."""
    table = Table(
        title="fastest format and policy that fit each card (formats searched: fp16, bf16, fp8, int8, nf4, GGUF)",
        caption=(
            "parity: one Linear's relative L2 error against fp32 in this format, then the image's on the tiny "
            "models, largest over the families (measured on the CPU; docs/measurement.md)"
        ),
    )
    for column in ("card", "format", "policy", "peak", "s/image", "band", "parity error"):
        table.add_column(column, justify="left" if column in ("card", "format", "policy") else "right")
    for card in answer["cards"]:
        best = card.get("best")
        if best is None:
            table.add_row(card["gpu"], "-", "does not fit in any format", "-", "-", "-", "-")
            continue
        error, image = best["parity_error"], best.get("parity_error_tiny_image")
        table.add_row(
            card["gpu"],
            best["precision"],
            best["policy"] + (" +vae tiling" if best["vae_tiling"] else ""),
            units.size(best["peak_bytes"]),
            f"{best['seconds_per_image']:.2f}",
            f"{best['seconds_band'][0]:.2f}-{best['seconds_band'][1]:.2f}",
            "not measured" if error is None else f"{error:.3f}" + ("" if image is None else f" / {image:.3f}"),
        )
    return table
