"""The ``sdshape`` command: zoo, inspect, run.

User mistakes raise :class:`UsageError` and end as one line on stderr with
exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sdshape import __version__, units
from sdshape.errors import UsageError
from sdshape.vocabulary import DEVICES
from sdshape.vocabulary import PRECISION_NAMES as PRECISIONS


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _add_run(sub: Any) -> None:
    run = sub.add_parser("run", help="measure each stage of a shape (the main job)")
    run.add_argument("--shape", help="zoo shape (default sd15), or a name from --shapes-file; see `sdshape zoo`")
    run.add_argument("--text-encoder", help="swap in any zoo text encoder (e.g. t5-v1.1-large)")
    run.add_argument("--unet", help="swap in any zoo UNet (e.g. bk-sdm-small); cross-attention is adapted")
    run.add_argument("--vae", help="swap in any zoo VAE (e.g. taesd)")
    run.add_argument("--seq-len", type=int, help="text sequence length (default 77; CLIP's maximum, T5 has none)")
    run.add_argument("--shapes-file", help="TOML of named compositions: [shape.NAME] text_encoder, unet, vae")
    run.add_argument("--backend", default="eager", help="backend, or a comma list (default eager)")
    run.add_argument("--precision", help=f"{'|'.join(PRECISIONS)} (default fp16 on a GPU, fp32 on the CPU)")
    run.add_argument("--device", help=f"{'|'.join(DEVICES)} (default: the GPU if there is one)")
    run.add_argument(
        "--resolution", type=int, help="image side in pixels, a multiple of 8 (default: native; 256 on CPU)"
    )
    run.add_argument("--steps", type=int, help="denoising steps (default 50 on a GPU, 3 on the CPU)")
    run.add_argument("--batch", type=int, default=1, help="images per prompt batch (default 1)")
    run.add_argument("--rounds", type=int, help="timed rounds per stage (default 5 on a GPU, 3 on the CPU)")
    run.add_argument("--warmup", type=int, help="untimed warm-up rounds per stage (default 2 on a GPU, 1 on the CPU)")
    run.add_argument("--weights", help="local diffusers pipeline folder to load instead of random weights")
    run.add_argument("--seed", type=int, default=0, help="seed for weights and inputs (default 0)")
    run.add_argument("--json", dest="json_path", help="write results here (pytest-benchmark JSON schema)")
    run.add_argument(
        "--compile-mode", default="default", help="torch.compile mode: default|max-autotune|reduce-overhead"
    )
    run.add_argument("--ort-provider", help="onnxruntime provider: cuda|tensorrt|cpu (default: cuda on a GPU)")
    run.add_argument("--cache-dir", help="exported models and engines (default $SDSHAPE_CACHE_DIR or ~/.cache/sdshape)")
    run.add_argument(
        "--no-parity", dest="parity", action="store_false", help="skip the comparison with eager fp32 outputs"
    )
    run.add_argument("--vram-cap", help="GPU only: emulate a smaller card, e.g. 8GiB; records per stage fit or OOM")
    run.add_argument(
        "--sample-interval",
        type=float,
        default=0.02,
        help="seconds between the sampler's readings (default 0.02; 0: no sampler thread, open/close readings only)",
    )
    run.add_argument(
        "--save", action="store_true", help="also store the results under --results-dir, never overwriting"
    )
    run.add_argument("--results-dir", default="results", help="where --save stores (default results/)")


def build_parser() -> Parser:
    parser = Parser(prog="sdshape", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sdshape {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    backends = sub.add_parser("backends", help="list backends: available here or not, and why")
    backends.add_argument("--json", action="store_true", help="print JSON")
    zoo = sub.add_parser("zoo", help="list components and shapes with parameter counts")
    zoo.add_argument("--json", action="store_true", help="print JSON")
    inspect = sub.add_parser("inspect", help="static cost of a shape: params, weight bytes, FLOPs (meta device)")
    inspect.add_argument("shape")
    inspect.add_argument("--resolution", type=int, help="image side in pixels (default: the shape's native)")
    inspect.add_argument("--steps", type=int, default=50, help="denoising steps per image (default 50)")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    _add_run(sub)
    compare = sub.add_parser("compare", help="verdicts between two result files: regressions, improvements, noise")
    compare.add_argument("base")
    compare.add_argument("new")
    compare.add_argument("--threshold", type=float, default=0.05, help="minimum time change that counts (default 0.05)")
    compare.add_argument("--memory-threshold", type=float, default=0.05, help="minimum memory change (default 0.05)")
    compare.add_argument("--energy-threshold", type=float, default=0.10, help="minimum energy change (default 0.10)")
    compare.add_argument("--thresholds", help="TOML file of per-id overrides ([[override]] tables)")
    compare.add_argument("--json", action="store_true", help="print JSON")
    report = sub.add_parser("report", help="Markdown + HTML report: shares per stage, GPU feasibility matrix")
    report.add_argument(
        "results", nargs="+", help="result files (run --json/--save, pytest --benchmark-json) and shapes.json files"
    )
    report.add_argument("--gpus", help="comma list of catalog GPUs (default: the whole catalog)")
    report.add_argument("--gpu-catalog", help="TOML file with your own cards, same form as the bundled catalog")
    report.add_argument("--out", default="report", help="output folder (default report/)")
    shapes = sub.add_parser("shapes", help="compositions within a parameter budget; --measure for their costs")
    shapes.add_argument("--budget", type=float, required=True, help="parameter budget, e.g. 1.07e9")
    shapes.add_argument("--family", default="zoo", help="zoo (real architectures) or tiny (test-sized)")
    shapes.add_argument("--resolution", type=int, help="image side for FLOPs and --measure (default 512)")
    shapes.add_argument("--steps", type=int, help="denoising steps per image (default 50)")
    shapes.add_argument("--seq-len", type=int, default=77, help="text tokens (capped at 77 for CLIP encoders)")
    shapes.add_argument("--measure", action="store_true", help="measure each distinct component once and compose")
    shapes.add_argument("--backend", default="eager", help="backend for --measure (one)")
    shapes.add_argument("--precision", help="precision for --measure (default fp16 on a GPU, fp32 on the CPU)")
    shapes.add_argument("--device", help="device for --measure (default: the GPU if there is one)")
    shapes.add_argument("--rounds", type=int, help="timed rounds per component for --measure")
    shapes.add_argument("--warmup", type=int, help="warm-up rounds per component for --measure")
    shapes.add_argument("--out", help="folder for shapes.json, shapes.md and (with --measure) pareto.png")
    shapes.add_argument("--json", action="store_true", help="print JSON")
    history = sub.add_parser("history", help="result files under a folder, ordered by driver, with step detection")
    history.add_argument("dir")
    history.add_argument("--gpu", help="only this GPU (a substring of its name)")
    history.add_argument("--out", default="history-report", help="where the Markdown and charts go")
    history.add_argument("--threshold", type=float, default=0.05, help="smallest level shift that is a step (0.05)")
    history.add_argument(
        "--run-to-run", type=float, default=0.01, help="run-to-run variation to allow for, as a fraction (0.01)"
    )
    return parser


# --- zoo ----------------------------------------------------------------------------------


def zoo_listing() -> dict[str, Any]:
    from sdshape.build import count_params, meta_module
    from sdshape.zoo import COMPONENTS, SHAPE_SPECS

    params = {name: count_params(meta_module(spec)) for name, spec in COMPONENTS.items()}
    components = [
        {"name": s.name, "kind": s.kind, "params": params[s.name], "description": s.description, "source": s.source}
        for s in COMPONENTS.values()
    ]
    shapes = []
    for shape in SHAPE_SPECS.values():
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
    table = Table(title="components (random weights from published configs)")
    for column in ("name", "kind", "params", "description"):
        table.add_column(column, justify="right" if column == "params" else "left")
    for c in listing["components"]:
        table.add_row(c["name"], c["kind"], f"{c['params']:,}", c["description"])
    console.print(table)
    shapes = Table(title="shapes")
    for column in ("name", "text encoder", "unet", "vae", "params", "shares te/unet/vae", "native"):
        shapes.add_column(column)
    for s in listing["shapes"]:
        share = " / ".join(units.share(s["param_shares"][k]) for k in ("text_encoder", "unet", "vae"))
        parts = s["components"]
        row = (s["name"], parts["text_encoder"], parts["unet"], parts["vae"], f"{s['params']:,}", share)
        shapes.add_row(*row, str(s["native_resolution"]))
    console.print(shapes)
    return 0


# --- inspect ------------------------------------------------------------------------------


def cmd_inspect(args: argparse.Namespace, console: Console) -> int:
    from sdshape.inspection import inspect_shape
    from sdshape.plan import check_resolution
    from sdshape.zoo import get_shape

    shape = get_shape(args.shape)
    check_resolution(args.resolution)
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    report = inspect_shape(shape, args.resolution or shape.native_resolution, args.steps)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    table = Table(
        title=f"{shape.name}: {report['resolution']}x{report['resolution']}, {report['steps']} steps, batch 1, CFG",
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
    )
    console.print(table)
    return 0


# --- run ----------------------------------------------------------------------------------


def _check_writable(path: str) -> Path:
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise UsageError(f"--json {path}: is a directory; give a file path")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"--json {path}: cannot write there (directory {parent} missing or not writable)")
    if target.exists() and not os.access(target, os.W_OK):
        raise UsageError(f"--json {path}: file exists and is not writable")
    return target


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from sdshape import plan as options

    plan = options.resolve(
        shape=args.shape,
        backend=args.backend,
        precision=args.precision,
        device=args.device,
        resolution=args.resolution,
        steps=args.steps,
        batch=args.batch,
        rounds=args.rounds,
        warmup=args.warmup,
        weights=args.weights,
        seed=args.seed,
        compile_mode=args.compile_mode,
        ort_provider=args.ort_provider,
        cache_dir=args.cache_dir,
        parity=args.parity,
        vram_cap=args.vram_cap,
        text_encoder=args.text_encoder,
        unet=args.unet,
        vae=args.vae,
        sequence_length=args.seq_len,
        shapes_file=args.shapes_file,
        sample_interval=args.sample_interval,
    )
    json_path = _check_writable(args.json_path) if args.json_path else None
    errors = Console(stderr=True)
    for note in plan.notes:
        errors.print(f"sdshape: {note}", highlight=False)

    from sdshape.document import benchmark_entry, document
    from sdshape.progress import make_progress
    from sdshape.session import run_backends
    from sdshape.table import print_comparison, print_report
    from sdshape.vocabulary import STAGES

    benchmarks: list[dict[str, Any]] = []
    environment: dict[str, Any] = {}

    def collect(session: Any) -> None:
        benchmarks.extend(benchmark_entry(session, session.outcomes[stage]) for stage in STAGES)
        environment.update(session.environment)

    with make_progress(errors) as progress:
        run_backends(plan, progress, on_session=collect)
    doc = document(benchmarks, environment)
    for backend in dict.fromkeys(b["extra_info"]["backend"] for b in benchmarks):
        print_report([b for b in benchmarks if b["extra_info"]["backend"] == backend], console)
    print_comparison(benchmarks, console)
    if json_path is not None:
        json_path.write_text(json.dumps(doc, indent=2))
        console.print(f"results written to {json_path}", highlight=False)
    if args.save:
        from sdshape.saving import save

        saved = save(
            doc,
            Path(args.results_dir),
            plan.shape if plan.weights is None else f"weights-{plan.weights.name}",
            plan.backends,
            plan.precision,
        )
        console.print(f"results saved to {saved}", highlight=False)
    failed = [b for b in benchmarks if b["extra_info"]["status"] != "ok"]
    if failed:
        console.print(f"[red]{len(failed)} stage(s) did not complete; their rows keep status and message[/red]")
    return 0


def _check_fractions(args: argparse.Namespace, *names: str) -> None:
    """Thresholds are fractions (0.05 = 5%); a percentage or a negative number is a usage error."""
    for name in names:
        value = getattr(args, name)
        if not 0 <= value < 10:
            raise UsageError(f"--{name.replace('_', '-')} must be a fraction such as 0.05, got {value}")


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from sdshape import compare, results_io
    from sdshape.report_compare import print_verdicts

    _check_fractions(args, "threshold", "memory_threshold", "energy_threshold")
    floors = compare.Floors(args.threshold, args.memory_threshold, args.energy_threshold)
    thresholds = compare.load_thresholds(args.thresholds, floors) if args.thresholds else compare.Thresholds(floors)
    base, new = results_io.load(args.base), results_io.load(args.new)
    results = compare.compare_files(base, new, thresholds)
    environment = compare.environment_diff(base, new)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print_verdicts(results, environment, base, new, console)
    return 1 if compare.failing(results) else 0


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from sdshape.report import write

    gpus = [name.strip() for name in args.gpus.split(",") if name.strip()] if args.gpus else None
    markdown_path, html_path = write(args.results, Path(args.out), gpus, args.gpu_catalog)
    console.print(f"report written: {markdown_path} and {html_path}", highlight=False)
    return 0


def cmd_shapes(args: argparse.Namespace, console: Console) -> int:
    from sdshape import explorer
    from sdshape.plan import check_resolution

    if not args.budget > 0:
        raise UsageError(f"--budget must be a positive number of parameters, got {args.budget:g}")
    check_resolution(args.resolution)
    for name in ("steps", "seq_len"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    plan = None
    if args.measure:
        from sdshape import plan as options

        plan = options.resolve(
            shape="tiny" if args.family == "tiny" else "sd15",
            backend=args.backend,
            precision=args.precision,
            device=args.device,
            resolution=args.resolution,
            steps=args.steps,
            rounds=args.rounds,
            warmup=args.warmup,
        )
        if len(plan.backends) != 1:
            raise UsageError("shapes --measure takes one backend")
    resolution = plan.resolution if plan else (args.resolution or 512)
    steps = plan.steps if plan else (args.steps or 50)
    found, skipped = explorer.enumerate_shapes(args.budget, args.family, resolution, steps, args.seq_len)
    if not found:
        raise UsageError(f"no composition of the {args.family} components fits {args.budget:.3g} parameters")
    measured = None
    if plan is not None:
        from sdshape.progress import make_progress

        with make_progress(Console(stderr=True)) as progress:
            measured = explorer.measure(found, plan, progress)
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
        document["cost_per_100m"] = explorer.cost_per_100m(found, measured["components"])
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "shapes.json").write_text(json.dumps(document, indent=2, default=str))
        if measured is not None:
            explorer.pareto_chart(document["shapes"], out / "pareto.png", explorer.conditions(document))
    if args.json:
        print(json.dumps(document, indent=2, default=str))
    else:
        _print_shapes(document, console)
    return 0


def _print_shapes(document: dict[str, Any], console: Console) -> None:
    from sdshape import explorer

    measured = "measured_conditions" in document
    table = Table(
        title=f"compositions within {document['budget']:.3g} parameters "
        f"({document['resolution']}px, {document['steps']} steps, CFG)"
    )
    columns = ["composition", "text enc.", "UNet", "VAE", "total", "split te/unet/vae", "FLOPs/image", "fp16 weights"]
    if measured:
        columns += ["s/image", "peak mem"]
    for column in columns:
        table.add_column(column, justify="left" if column == "composition" else "right")
    for shape in document["shapes"]:
        p = shape["params_by_kind"]
        split = " / ".join(units.share(shape["param_shares"][k]) for k in ("text_encoder", "unet", "vae"))
        row = [
            shape["name"],
            units.count(p["text_encoder"]),
            units.count(p["unet"]),
            units.count(p["vae"]),
            units.count(shape["params"]),
            split,
            units.count(shape["flops_per_image"]),
            units.size(shape["weight_bytes"]["fp16"]),
        ]
        if measured:
            costs = shape.get("measured") or {}
            row += [units.seconds(costs.get("seconds_per_image")), units.size(costs.get("peak_bytes"))]
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
        per = Table(title="cost per 100 M parameters, by component kind (" + explorer.conditions(document) + ")")
        for column in ("kind", "component", "params", "s/image", "s per 100 M params", "activations per 100 M"):
            per.add_column(column, justify="left" if column in ("kind", "component") else "right")
        for row in document["cost_per_100m"]:
            per.add_row(
                row["kind"],
                row["component"],
                units.count(row["params"]),
                units.seconds(row["seconds_per_image"]),
                units.seconds(row["seconds_per_100m"]),
                units.size(row["activation_bytes_per_100m"]),
            )
        console.print(per)
        check = document["check"]
        if check:
            difference = f"{check['difference']:+.1%}" if check["difference"] is not None else "-"
            console.print(
                f"check: {check['name']} end to end {units.seconds(check['end_to_end_s'])}, composed "
                f"{units.seconds(check['composed_s'])} ({difference})",
                highlight=False,
            )


def cmd_history(args: argparse.Namespace, console: Console) -> int:
    from sdshape.history import write_report

    _check_fractions(args, "threshold", "run_to_run")
    report, series = write_report(Path(args.dir), Path(args.out), args.gpu, args.threshold, args.run_to_run)
    steps = sum(len(s.steps) for s in series)
    console.print(f"{len(series)} series, {steps} step(s) found; report: {report}", highlight=False)
    return 0


def backend_listing() -> list[dict[str, Any]]:
    from importlib.metadata import entry_points

    from sdshape.backends import BUILTIN, ENTRY_POINT_GROUP, backend_names, get_backend
    from sdshape.backends.ort import PROVIDERS
    from sdshape.backends.torch_compile import MODES

    variants = {"compile": list(MODES), "onnxruntime": list(PROVIDERS)}
    registered = {entry.name: entry.value for entry in entry_points(group=ENTRY_POINT_GROUP)}
    rows = []
    for name in backend_names():
        try:
            ok, reason = get_backend(name).available()
        except UsageError as error:
            ok, reason = False, str(error)
        origin = registered.get(name, f"{BUILTIN[name].__module__}:{BUILTIN[name].__name__}" if name in BUILTIN else "")
        rows.append(
            {"name": name, "available": ok, "reason": reason, "variants": variants.get(name, []), "entry_point": origin}
        )
    return rows


def cmd_backends(args: argparse.Namespace, console: Console) -> int:
    rows = backend_listing()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="backends (entry-point group sdshape.backends)")
    for column in ("name", "available", "variants (name:variant)", "reason / entry point"):
        table.add_column(column)
    for row in rows:
        available = "[green]yes[/green]" if row["available"] else "[red]no[/red]"
        table.add_row(row["name"], available, ", ".join(row["variants"]) or "-", row["reason"] or row["entry_point"])
    console.print(table)
    return 0


COMMANDS = {
    "zoo": cmd_zoo,
    "inspect": cmd_inspect,
    "run": cmd_run,
    "backends": cmd_backends,
    "compare": cmd_compare,
    "history": cmd_history,
    "report": cmd_report,
    "shapes": cmd_shapes,
}


def make_console() -> Console:
    """Stdout console; logs and pipes get 160 columns so the table is not folded."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def main(argv: list[str] | None = None) -> int:
    console = make_console()
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args, console)
    except UsageError as error:
        message = str(error)
        if not message.startswith("sdshape"):
            message = f"sdshape: error: {message}"
        print(message, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sdshape: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
