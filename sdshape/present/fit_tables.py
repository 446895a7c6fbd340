"""The tables of ``sdshape fit``: each card under the asked format and policy, and the fastest format and
policy that fit each card (``sdshape.cli.fit`` computes the answer with the static model)."""

from __future__ import annotations

from rich.table import Table

from sdshape.core import units


def fit_table(answer: dict) -> Table:
    """Per card: whether the shape fits, under which policy, its peaks, host RAM and seconds with their band."""
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
