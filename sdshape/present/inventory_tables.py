"""The tables of ``sdshape zoo``, ``inspect`` (one shape, and ``--all``) and ``backends``: the commands in
``sdshape.cli.inventory`` gather the data and call these to print it."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from sdshape.core import units
from sdshape.core.vocabulary import PER_IMAGE_STAGES
from sdshape.present.tables import guidance_label

FLOP_CLASSES = ("attention", "convolution", "gemm")


def print_zoo(listing: dict[str, Any], console: Console) -> None:
    """The components and the shapes, with their parameter counts and shares."""
    table = Table(title="components (random weights from published configs)")
    for column in ("name", "kind", "params", "description"):
        table.add_column(column, justify="right" if column == "params" else "left")
    for c in listing["components"]:
        table.add_row(c["name"], c["kind"], f"{c['params']:,}", c["description"])
    console.print(table)
    shapes = Table(title="shapes")
    for column in ("name", "text encoder", "denoiser", "vae", "params", "shares te/denoiser/vae", "native"):
        shapes.add_column(column)
    for s in listing["shapes"]:
        share = " / ".join(units.share(s["param_shares"][k]) for k in ("text_encoder", "denoiser", "vae"))
        parts = s["components"]
        row = (s["name"], parts["text_encoder"], parts["denoiser"], parts["vae"], f"{s['params']:,}", share)
        shapes.add_row(*row, str(s["native_resolution"]))
    console.print(shapes)


def print_inspect(report: dict[str, Any], console: Console, shape_name: str) -> None:
    """One shape's stages: parameters, bytes and FLOPs per call and per image, by kernel class."""
    table = Table(
        title=(
            f"{shape_name}: {report['resolution']}x{report['resolution']}, {report['steps']} steps, batch 1, "
            f"{guidance_label(report['guidance'], report['guidance_scale'])}, {report['family']} family"
        ),
        caption=report["flops_note"],
    )
    for column in (
        "stage",
        "component",
        "params",
        "params %",
        "fp16 weights",
        "FLOPs/call",
        "calls/image",
        "FLOPs/image",
        "FLOPs %",
        *FLOP_CLASSES,
    ):
        table.add_column(column, justify="left" if column in ("stage", "component") else "right")
    for name, stage in report["stages"].items():
        table.add_row(
            name,
            stage["component"],
            f"{stage['params']:,}",
            units.share(stage["param_share"]),
            units.size(stage["weight_bytes"]["fp16"]),
            units.count(stage["flops_per_call"]),
            str(stage["calls_per_image"]),
            units.count(stage["flops_per_image"]),
            units.share(stage["flops_share"]),
            *(units.share(stage["flops_class_shares"].get(kind, 0.0)) for kind in FLOP_CLASSES),
        )
    total = report["total"]
    table.add_section()
    table.add_row(
        "total",
        "",
        f"{total['params']:,}",
        "100%",
        units.size(total["weight_bytes"]["fp16"]),
        "",
        "",
        units.count(total["flops_per_image"]),
        "100%",
        *(units.share(total["flops_class_shares"].get(kind, 0.0)) for kind in FLOP_CLASSES),
    )
    console.print(table)
    console.print(
        "  attention: the score and value products (batched matmuls); GEMM: the linear projections and MLPs; "
        "convolution: every conv. FLOPs only: the time split by kernel class comes from `sdshape run --profile`.",
        highlight=False,
    )


def print_field(rows: list[dict[str, Any]], console: Console, chart: str | None = None) -> None:
    """``inspect --all``: where each published system spends its parameters, bytes and FLOPs."""
    table = Table(
        title="how the field spends its parameters (published configs; each pipeline's own resolution and steps)",
        caption="shares: text encoders / denoiser / VAE; weight bytes in bf16 with buffers; FLOPs per image",
    )
    for column in ("system", "year", "res", "steps", "guidance", "params", "param shares", "bf16 weights",
                   "weight shares", "FLOPs/image", "FLOP shares"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("system", "guidance") else "right")
    for row in rows:
        split = {key: " / ".join(units.share(row[key][p]) for p in PER_IMAGE_STAGES) for key in
                 ("param_share", "weight_share", "flops_share")}  # fmt: skip
        table.add_row(
            row["shape"], str(row["year"]), str(row["resolution"]), str(row["steps"]), row["guidance"],
            units.count(sum(row["params"].values())), split["param_share"],
            units.size(sum(row["weight_bytes_bf16"].values())), split["weight_share"],
            units.count(sum(row["flops_per_image"].values())), split["flops_share"],
        )  # fmt: skip
    console.print(table)
    if chart:
        console.print(f"  chart: {chart}", highlight=False)


def print_registered_backends(rows: list[dict[str, Any]], console: Console) -> None:
    """Every registered backend: available here or not, its variants and options, why or where from."""
    table = Table(title="backends (entry-point group sdshape.backends)")
    for column in ("name", "available", "variants (name:variant)", "options (flag)", "reason / entry point"):
        table.add_column(column)
    for row in rows:
        available = "[green]yes[/green]" if row["available"] else "[red]no[/red]"
        options = ", ".join(f"{o['name']} ({o['flag']})" if o["flag"] else o["name"] for o in row["options"])
        variants = ", ".join(row["variants"]) or "-"
        table.add_row(row["name"], available, variants, options or "-", row["reason"] or row["entry_point"])
    console.print(table)
