"""The terminal tables of ``sdshape shapes``: compositions by parameters and FLOPs, priced on catalog cards
(``--gpu``), and measured (``--measure``) with the composition rule's check."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from sdshape.core import units
from sdshape.shapes.shapes_document import conditions


def print_priced(document: dict[str, Any], console: Console) -> None:
    from sdshape.shapes.priced import CAPTION, COLUMNS, priced_rows, title

    context = units.size(document["priced_conditions"]["context_bytes"])
    measured = "measured_conditions" in document
    for card in document["priced_conditions"]["cards"]:
        table = Table(title=title(document, card["name"]), caption=CAPTION.format(context=context))
        for column in COLUMNS:  # the composition's name whole (folded), the other columns as they fit
            left = column in ("composition", "zoo", "policy", "bound")
            table.add_column(column, justify="left" if left else "right", overflow="fold")
        if measured:
            table.add_column("measured s/image", justify="right")
        by_name = {s["name"]: s for s in document["shapes"]}
        for row in priced_rows(document, card["name"]):
            cells = [str(row[c]) for c in COLUMNS]
            if measured:
                costs = by_name[row["composition"]].get("measured") or {}
                cells.append(units.seconds(costs.get("seconds_per_image")))
            table.add_row(*cells)
        console.print(table)
    skipped = document["skipped"]
    console.print("left out: " + ", ".join(f"{n} {why}" for why, n in skipped.items() if n), highlight=False)
    for shape in document["shapes"]:
        for note in shape["adaptation"]:
            console.print(f"  {shape['name']}: {note}", highlight=False)


def print_beside(document: dict[str, Any], console: Console) -> None:
    """The measured compositions beside the model's figures on the priced card, and where they were measured."""
    from sdshape.shapes.beside import MEASURED_CAPTION, beside_rows, beside_title

    columns, rows = beside_rows(document)
    table = Table(title=beside_title(document), caption=MEASURED_CAPTION)
    for column in columns:
        table.add_column(column, justify="left" if column in ("composition", "verdict") else "right", overflow="fold")
    for row in rows:
        table.add_row(*(row[c] for c in columns))
    console.print(table)
    console.print(document["comparison"]["statement"], highlight=False)


def print_shapes(document: dict[str, Any], console: Console, which: str | None = None) -> None:
    """The compositions with their parameters and FLOPs, and with ``--measure`` their measured costs; ``which``
    names the rows when they are not every composition within the budget."""
    measured = "measured_conditions" in document
    which = which or f"compositions within {document['budget'] or 0:.3g} parameters"
    table = Table(title=f"{which} ({document['resolution']}px, {document['steps']} steps, CFG)")
    columns = ["composition", "text enc.", "UNet", "VAE", "total", "split te/unet/vae", "FLOPs/image", "fp16 weights"]
    if measured:
        columns += ["s/image", "±CI", "rank", "peak mem"]
    for column in columns:
        table.add_column(column, justify="left" if column == "composition" else "right")
    for shape in document["shapes"]:
        p = shape["params_by_kind"]
        split = " / ".join(units.share(shape["param_shares"][k]) for k in ("text_encoder", "denoiser", "vae"))
        row = [
            shape["name"],
            units.count(p["text_encoder"]),
            units.count(p["denoiser"]),
            units.count(p["vae"]),
            units.count(shape["params"]),
            split,
            units.count(shape["flops_per_image"]),
            units.size(shape["weight_bytes"]["fp16"]),
        ]
        if measured:
            costs = shape.get("measured") or {}
            seconds, half = costs.get("seconds_per_image"), costs.get("ci_s")
            ci = f"±{half / seconds:.1%}" if seconds and half is not None else "-"
            rank = f"{costs['rank']}{'=' if costs.get('tied') else ''}" if costs.get("rank") else "-"
            row += [units.seconds(seconds), ci, rank, units.size(costs.get("peak_bytes"))]
        table.add_row(*row)
    console.print(table)
    skipped = document["skipped"]
    console.print(
        f"left out: {skipped['over budget']} over budget, {skipped['incompatible']} incompatible", highlight=False
    )
    for shape in document["shapes"]:
        for note in shape["adaptation"]:
            console.print(f"  {shape['name']}: {note}", highlight=False)
    if measured:
        per = Table(title="cost per 100 M parameters, by component kind (" + conditions(document) + ")")
        columns = ("kind", "component", "params", "s/image", "±CI", "GPU busy", "s per 100 M params", "act. per 100 M")
        for column in columns:
            per.add_column(column, justify="left" if column in ("kind", "component") else "right")
        components = document.get("components") or {}
        for row in document["cost_per_100m"]:
            cost = components.get(row["component"], {})
            rel, busy = cost.get("rel_ci"), cost.get("busy_fraction")
            per.add_row(
                row["kind"],
                row["component"],
                units.count(row["params"]),
                units.seconds(row["seconds_per_image"]),
                f"±{rel:.1%}" if rel is not None else "-",
                ("n/a" if busy is None else f"{busy:.0%}") + (" host-bound" if cost.get("host_bound") else ""),
                units.seconds(row["seconds_per_100m"]),
                units.size(row["activation_bytes_per_100m"]),
            )
        console.print(per)
        check = document["check"]
        if check:
            console.print(check_line(check), highlight=False)
        console.print(
            "  rank: by s/image; '=' marks compositions whose difference is inside their combined 95% CI (tied, "
            "not ordered by noise)",
            highlight=False,
        )


def check_line(check: dict[str, Any]) -> str:
    """The composition rule's check: agreement within the combined CI, or the component that is off."""
    difference = f"{check['difference']:+.1%}" if check.get("difference") is not None else "-"
    line = (
        f"check: {check['name']} end to end {units.seconds(check['end_to_end_s'])}, composed "
        f"{units.seconds(check['composed_s'])} ({difference})"
    )
    combined = check.get("combined_ci_s")
    if check.get("agrees"):
        return f"{line}: agrees within the combined CI of {units.seconds(combined)}"
    if check.get("agrees") is False:
        spread = f"the combined CI of {units.seconds(combined)}" if combined is not None else "their CIs"
        return f"{line}: [yellow]outside {spread}; the {check.get('off')} component is off[/yellow]"
    return line
