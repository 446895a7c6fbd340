"""``sdshape inspect --all --quality``: each published system's quality figures beside what it costs on a card.

The cost is the static model's, judged as ``sdshape fit`` judges it (``sdshape.feasibility.field_cost``); the
figures are the published ones in ``quality.toml``; the tables, the chart and quality.md are the report's own
section (``sdshape.present.report.quality_section``), so the terminal, the files and the report agree.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console

from sdshape.core.errors import UsageError
from sdshape.present.quality_tables import print_quality


def check_quality_flags(args: argparse.Namespace) -> None:
    """``--gpu``, ``--gpu-catalog``, ``--precision`` and ``--out`` say how to price: they go with --quality."""
    if not args.quality:
        given = [flag for flag, value in (("--gpu", args.gpu), ("--gpu-catalog", args.gpu_catalog),
                                          ("--precision", args.precision), ("--out", args.out)) if value]  # fmt: skip
        if given:
            raise UsageError(f"{', '.join(given)} go with `inspect --all --quality`")


def _pricing(args: argparse.Namespace) -> dict[str, Any]:
    """The card, the format and the time model, each checked before anything is counted or traced."""
    from sdshape.feasibility.catalog import load_catalog, pick
    from sdshape.feasibility.field_cost import DEFAULT_CARD, DEFAULT_PRECISION
    from sdshape.feasibility.formats import weight_format
    from sdshape.feasibility.time_model import bundled_time_model

    gpu = pick(load_catalog(args.gpu_catalog), [args.gpu or DEFAULT_CARD])[0]
    if gpu.sms is None or gpu.architecture is None:
        raise UsageError(f"card {gpu.name!r} has no 'architecture' and 'sms' in the catalog: it cannot be modelled")
    return {"gpu": gpu, "fmt": weight_format(args.precision or DEFAULT_PRECISION), "model": bundled_time_model()}


def cmd_inspect_quality(args: argparse.Namespace, console: Console, rows: Any, chart: Any) -> int:
    """``rows``: a callable giving the field rows (the count takes a while); ``chart``: the field chart's
    target, already checked, or None."""
    from sdshape.feasibility.field_cost import field_costs
    from sdshape.feasibility.quality import load_quality
    from sdshape.result.output import folder_target, make_folder, standard_json, write_or_fall_back, write_output

    data = load_quality()  # a slip in the bundled file is an error before any work
    pricing = _pricing(args)
    out = folder_target(args.out, "--out") if args.out is not None else None
    with console.status("counting on the meta device") as status:
        field = rows(lambda name: status.update(f"counting {name} on the meta device"))
        costs = field_costs(pricing["gpu"], pricing["fmt"], pricing["model"], progress=status.update)
    from sdshape.feasibility.quality_field import quality_document

    document = quality_document(field, costs, data)
    if chart is not None:
        from sdshape.present.charts.field_shares import field_png

        write_output(chart, field_png(field))
    if out is not None:
        from sdshape.cli.run import say_written
        from sdshape.present.report.quality_section import quality_sections
        from sdshape.present.report.sections import markdown

        written, why = write_or_fall_back(make_folder(out) / "quality.json", standard_json(document), "quality")
        say_written(Console(stderr=True), "quality table written to", out / "quality.json", written, why)
        if why is None:
            sections = quality_sections(document)
            write_output(out / "quality.png", next(s.png for s in sections if hasattr(s, "png")))
            write_output(out / "quality.md", markdown(sections))
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print_quality(document, console)
    return 0
