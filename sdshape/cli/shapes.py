"""``sdshape shapes``: compositions within a parameter budget, and with ``--measure`` their costs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from sdshape.config.options import DEFAULT_BACKEND, DEFAULT_SHAPE, GPU_DEFAULTS, RunOptions
from sdshape.core import units
from sdshape.core.errors import UsageError
from sdshape.result.output import folder_target, make_folder, standard_json, write_or_fall_back

NATIVE_RESOLUTION = 512  # SD 1.5's
CLIP_TOKENS = 77  # CLIP's context; T5 encoders are capped to it in compositions


def cmd_shapes(args: argparse.Namespace, console: Console) -> int:
    from sdshape.config.limits import check_resolution
    from sdshape.explorer import chart, compositions
    from sdshape.models.zoo import get_shape

    if not args.budget > 0:
        raise UsageError(f"--budget must be a positive number of parameters, got {args.budget:g}")
    check_resolution(args.resolution)
    out = folder_target(args.out, "--out") if args.out is not None else None
    options = RunOptions.from_values(vars(args))
    for flag, value in (("--steps", options.steps), ("--seq-len", options.sequence_length)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    plan = None
    if args.measure:
        from dataclasses import replace

        from sdshape.config.options import backend_flags
        from sdshape.config.plan import cuda_available, resolve

        on_gpu = options.device == "cuda" or (options.device is None and cuda_available())
        # On a GPU the explorer measures GPU work by default: CUDA-graph replay, rounds until stable.
        backend = options.backend or ("eager:cudagraph" if on_gpu else DEFAULT_BACKEND)
        shape = "tiny" if args.family == "tiny" else DEFAULT_SHAPE
        plan = resolve(replace(options, shape=shape, backend=backend), backend_flags=backend_flags(vars(args)))
        if len(plan.backends) != 1:
            raise UsageError("shapes --measure takes one backend")
    # Without --measure: the budget's FLOPs at SD 1.5's native size (the tiny shape's for tiny components)
    # and a GPU run's steps.
    native = get_shape("tiny").native_resolution if args.family == "tiny" else NATIVE_RESOLUTION
    resolution = plan.resolution if plan else (options.resolution or native)
    steps = plan.steps if plan else (options.steps or GPU_DEFAULTS.steps)
    found, skipped = compositions.enumerate_shapes(
        args.budget, args.family, resolution, steps, options.sequence_length or CLIP_TOKENS
    )
    if not found:
        beyond = skipped.get("beyond the position table", 0)
        why = f" at {resolution} px ({beyond} beyond their denoiser's position table)" if beyond else ""
        raise UsageError(f"no composition of the {args.family} components fits {args.budget:.3g} parameters{why}")
    measured = None
    if plan is not None:
        from sdshape.run.progress import make_progress

        with make_progress(Console(stderr=True)) as progress:
            from sdshape.explorer.measure import measure

            measured = measure(found, plan, progress)
    document = {
        "budget": args.budget,
        "family": args.family,
        "resolution": resolution,
        "steps": steps,
        "skipped": skipped,
        "shapes": [c.as_dict(steps) for c in found],
    }
    if measured is not None:
        document["measured_conditions"] = {
            "device": plan.device.type,
            "precision": plan.precision,
            "backend": plan.backends[0],
            "rounds": plan.rounds,
            "warmup": plan.warmup,
        }
        document["components"] = measured["components"]
        document["check"] = measured["check"]
        from sdshape.explorer.measure import cost_per_100m

        document["cost_per_100m"] = cost_per_100m(found, measured["components"])
    lost = False
    if out is not None:  # the document falls back to a printed file like run's results; a chart cannot
        from sdshape.cli.run import say_written

        written, why = write_or_fall_back(make_folder(out) / "shapes.json", standard_json(document), "shapes")
        say_written(Console(stderr=True), "shapes written to", out / "shapes.json", written, why)
        lost = why is not None
        if measured is not None and not lost:
            chart.pareto_chart(document["shapes"], out / "pareto.png", chart.conditions(document))
    if args.json:
        print(json.dumps(document, indent=2, default=str))
    else:
        _print_shapes(document, console)
    return 1 if lost else 0


def _print_shapes(document: dict[str, Any], console: Console) -> None:
    from sdshape.explorer import chart

    measured = "measured_conditions" in document
    table = Table(
        title=f"compositions within {document['budget']:.3g} parameters "
        f"({document['resolution']}px, {document['steps']} steps, CFG)"
    )
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
        per = Table(title="cost per 100 M parameters, by component kind (" + chart.conditions(document) + ")")
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
