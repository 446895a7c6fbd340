"""``sdshape zoo``, ``inspect`` and ``backends``: what can be measured, before anything runs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console

from sdshape.core.errors import UsageError
from sdshape.present.inventory_tables import print_field, print_inspect, print_registered_backends, print_zoo


def zoo_listing() -> dict[str, Any]:
    from sdshape.models.build import count_params, meta_module
    from sdshape.models.zoo import all_components, all_shapes

    params = {name: count_params(meta_module(spec)) for name, spec in all_components().items()}
    components = [
        {"name": s.name, "kind": s.kind, "params": params[s.name], "description": s.description, "source": s.source}
        for s in all_components().values()
    ]
    shapes = []
    for shape in all_shapes().values():
        parts = shape.components()
        total = sum(params[name] for name in parts.values())
        shapes.append(
            {
                "name": shape.name,
                "description": shape.description,
                "components": parts,
                "params": total,
                "param_shares": {kind: params[name] / total for kind, name in parts.items()},
                "native_resolution": shape.native_resolution,
                "source": shape.source,
            }
        )
    return {"components": components, "shapes": shapes}


def cmd_zoo(args: argparse.Namespace, console: Console) -> int:
    listing = zoo_listing()
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    print_zoo(listing, console)
    return 0


def cmd_inspect(args: argparse.Namespace, console: Console) -> int:
    from sdshape.cli.quality import check_quality_flags
    from sdshape.config.resolvers import zoo_shape_size
    from sdshape.models.inspection import inspect_shape

    check_quality_flags(args)
    if args.quality and not args.all:
        raise UsageError("--quality goes with --all: every published system's figures beside its cost")
    if args.all or args.shape is None:
        if args.shape is not None or not args.all:
            raise UsageError("inspect: give a SHAPE or --all (not both); see `sdshape zoo` for the shapes")
        return cmd_inspect_all(args, console)
    if args.chart:
        raise UsageError("--chart draws the field chart: it goes with --all")
    shape, steps, resolution = zoo_shape_size(args.shape, args.steps, args.resolution)
    report = inspect_shape(shape, resolution, steps)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print_inspect(report, console, shape.name)
    return 0


def cmd_inspect_all(args: argparse.Namespace, console: Console) -> int:
    """The seed question, answered from the configs: where each system spends parameters, bytes and FLOPs."""
    from sdshape.models.inspection import field_rows
    from sdshape.result.output import file_target, write_output

    if args.resolution or args.steps:
        raise UsageError("--all uses each system's own resolution and steps; --resolution/--steps go with a SHAPE")
    chart = file_target(args.chart, "--chart") if args.chart else None  # checked before the work
    if args.quality:
        from sdshape.cli.quality import cmd_inspect_quality

        return cmd_inspect_quality(args, console, lambda progress: field_rows(progress=progress), chart)
    with console.status("counting on the meta device") as status:
        rows = field_rows(progress=lambda name: status.update(f"counting {name} on the meta device"))
    if chart is not None:
        from sdshape.present.charts.field_shares import field_png

        write_output(chart, field_png(rows))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print_field(rows, console, args.chart)
    return 0


def backend_listing() -> list[dict[str, Any]]:
    """Every registered backend: available here or not and why, its options and variants, where it comes from."""
    from sdshape.backends import backend_class, backend_names, declared_options, declared_variants, get_backend, origin

    rows = []
    for name in backend_names():
        options, variants = [], []
        try:
            cls = backend_class(name)
            options = [option.describe() for option in declared_options(cls)]
            variants = list(declared_variants(cls))
            ok, reason = get_backend(name).available()
        except UsageError as error:
            ok, reason = False, str(error)
        except Exception as error:  # a third-party backend's bug must not take the listing down
            ok, reason = False, f"failed to load: {type(error).__name__}: {error}"
        rows.append(
            {
                "name": name,
                "available": ok,
                "reason": reason,
                "variants": variants,
                "options": options,
                "entry_point": origin(name),
            }
        )
    return rows


def cmd_backends(args: argparse.Namespace, console: Console) -> int:
    rows = backend_listing()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print_registered_backends(rows, console)
    return 0
