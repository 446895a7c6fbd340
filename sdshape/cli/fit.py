"""``sdshape fit``: which cards a shape fits, under which policy, how fast; from the static model alone."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from sdshape.core import units
from sdshape.core.errors import UsageError


def cmd_fit(args: argparse.Namespace, console: Console) -> int:
    from sdshape.config.limits import check_resolution
    from sdshape.core.errors import choices_error
    from sdshape.feasibility.catalog import load_catalog, pick
    from sdshape.feasibility.fit import fit
    from sdshape.feasibility.formats import weight_format
    from sdshape.feasibility.model import BACKENDS, bundled_time_model
    from sdshape.models.zoo import get_shape

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
    if args.json:
        answer = fit(shape, gpus, bundled_time_model(), fmt, resolution, steps, args.batch, args.backend,
                     args.policy, args.vae_fp16)  # fmt: skip
        print(json.dumps(answer, indent=2))
        return 0
    with console.status("tracing on the meta device") as status:
        answer = fit(shape, gpus, bundled_time_model(), fmt, resolution, steps, args.batch, args.backend,
                     args.policy, args.vae_fp16, progress=status.update)  # fmt: skip
    console.print(fit_table(answer))
    return 0


def fit_table(answer: dict) -> Table:
    table = Table(
        title=(
            f"{answer['shape']}: {answer['resolution']} px, {answer['steps']} steps, batch {answer['batch']}, "
            f"{answer['precision']} ({answer['precision_note']}), {answer['backend']}; model, not measurement"
        ),
        caption=(
            f"peak = torch allocated peak (weights + traced activations); fits = peak + "
            f"{units.size(answer['context_bytes'])} CUDA context within the card. Seconds carry the band the "
            f"validation found: {answer['time_model']['band']}. Host launch cost: {answer['time_model']['host']}."
        ),
    )
    for column in ("card", "VRAM", "fits", "policy", "peak all resident", "peak under policy", "s/image",
                   "band", "loop it/s", "bound"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("card", "fits", "policy", "bound") else "right")
    for card in answer["cards"]:
        seconds = card["seconds_per_image"]
        policy = card["policy"]
        table.add_row(
            card["gpu"],
            units.size(card["vram_bytes"]),
            "yes" if card["fits"] else ("unsupported" if not card["supported"] else "no"),
            policy or "-",
            units.size(card["peak_bytes"]),
            units.size(card["peak_bytes_by_policy"][policy]) if policy else "-",
            f"{seconds:.2f}" if seconds is not None else "-",
            f"{card['seconds_band'][0]:.2f}-{card['seconds_band'][1]:.2f}" if seconds is not None else "-",
            f"{card['loop_it_s']:.1f}" if card["loop_it_s"] else "-",
            (card["bound"] or "-") + ("" if card["calibrated"] else " (uncalibrated arch)"),
        )
    return table
