"""``sdshape shapes``: compositions within a parameter budget, with ``--gpu`` priced on catalog cards by the static
model, and with ``--measure`` their measured costs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console

from sdshape.config.declaring import DEFAULT_BACKEND, DEFAULT_SHAPE, GPU_DEFAULTS
from sdshape.config.options import RunOptions
from sdshape.core import units
from sdshape.core.errors import UsageError
from sdshape.present.shapes_tables import print_beside, print_priced, print_shapes
from sdshape.result.output import folder_target, make_folder, standard_json, write_or_fall_back

NATIVE_RESOLUTION = 512  # SD 1.5's
CLIP_TOKENS = 77  # CLIP's context; T5 encoders are capped to it in compositions


def cmd_shapes(args: argparse.Namespace, console: Console) -> int:
    from sdshape.models.zoo import get_shape
    from sdshape.present.charts import explorer
    from sdshape.shapes import compositions

    budget_bytes = None
    if args.budget_bytes is not None:
        from sdshape.config.limits import BUDGET_BYTES

        budget_bytes = BUDGET_BYTES.check("--budget-bytes", units.parse_size(args.budget_bytes, "--budget-bytes"))
        if not args.gpu:
            raise UsageError("--budget-bytes counts the weights as a card's precision stores them: give --gpu CARD")
    if args.budget is None and budget_bytes is None:
        raise UsageError("shapes: give --budget (parameters) or --budget-bytes (with --gpu)")
    if args.budget is not None and not args.budget > 0:
        raise UsageError(f"--budget must be a positive number of parameters, got {args.budget:g}")
    _check_measure_flags(args)
    out = folder_target(args.out, "--out") if args.out is not None else None
    options = RunOptions.from_values(vars(args))  # its numbers were checked against their bounds when parsed
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
        from sdshape.feasibility.preflight import check_fits

        check_fits(plan)
    pricing = _pricing(args, options, plan) if args.gpu else None  # the cards and the format, checked first
    # Without --measure: the budget's FLOPs at SD 1.5's native size (the tiny shape's for tiny components)
    # and a GPU run's steps.
    native = get_shape("tiny").native_resolution if args.family == "tiny" else NATIVE_RESOLUTION
    resolution = plan.options.resolution if plan else (options.resolution or native)
    steps = plan.options.steps if plan else (options.steps or GPU_DEFAULTS.steps)
    params = args.budget
    if budget_bytes is not None:  # no composition above bytes / the format's narrowest storage can fit
        from sdshape.config.limits import MAX_BUDGET
        from sdshape.shapes.priced import least_bytes_per_param

        bound = min(MAX_BUDGET, budget_bytes / least_bytes_per_param(pricing["format"]))
        params = bound if params is None else min(params, bound)
    found, skipped = compositions.enumerate_shapes(
        params, args.family, resolution, steps, options.sequence_length or CLIP_TOKENS
    )
    if not found:
        beyond = skipped.get("beyond the position table", 0)
        why = f" at {resolution} px ({beyond} beyond their denoiser's position table)" if beyond else ""
        raise UsageError(f"no composition of the {args.family} components fits {_budget_text(args, budget_bytes)}{why}")
    priced = None
    if pricing is not None:  # priced first: with --measure the priced table chooses what is measured
        priced, skipped["over byte budget"] = _price(found, pricing, resolution, steps, budget_bytes)
        if not priced:
            raise UsageError(f"no composition of the {args.family} components fits {_budget_text(args, budget_bytes)}")
    measured, chosen, top = None, found, None
    if plan is not None:
        from sdshape.run.progress import make_progress

        if priced is not None:
            from sdshape.shapes.beside import DEFAULT_TOP, ranked_first

            card, top = pricing["gpus"][0].name, args.top or DEFAULT_TOP
            chosen = ranked_first(priced["rows"], card, top)
            if not chosen:
                raise UsageError(f"the model fits none of the {len(priced['rows'])} compositions on {card}: "
                                 "nothing to measure beside it")  # fmt: skip
        with make_progress(Console(stderr=True)) as progress:
            from sdshape.shapes.composed_costs import measure

            measured = measure(chosen, plan, progress)
    document = {
        "budget": args.budget,
        "family": args.family,
        "resolution": resolution,
        "steps": steps,
        "skipped": skipped,
        "shapes": [c.as_dict(steps) for c in found],
    }
    if priced is not None:
        document["shapes"] = [{**c.as_dict(steps), "priced": entry} for c, entry in priced["rows"]]
        document["priced_conditions"] = {**priced["conditions"], "budget_bytes": budget_bytes}
    if measured is not None:
        machine = measured["machine"]
        document["measured_conditions"] = {
            "device": plan.device.type,
            "device_name": machine.get("gpu_name") or machine.get("cpu_model"),
            "precision": plan.options.precision,
            "backend": plan.backends[0],
            "rounds": plan.rounds,
            "warmup": plan.options.warmup,
            # with --gpu: the priced table's first `top` that fit the card; without: every composition
            "top": top,
        }
        document["components"] = measured["components"]
        document["check"] = measured["check"]
        from sdshape.shapes.composed_costs import cost_per_100m

        document["cost_per_100m"] = cost_per_100m(chosen, measured["components"])
        if priced is not None:
            _beside_model(document, pricing, plan, measured["machine"], len(chosen))
    lost = False
    if out is not None:  # the document falls back to a printed file like run's results; a chart cannot
        from sdshape.cli.run import say_written

        written, why = write_or_fall_back(make_folder(out) / "shapes.json", standard_json(document), "shapes")
        say_written(Console(stderr=True), "shapes written to", out / "shapes.json", written, why)
        lost = why is not None
        from sdshape.result.output import write_output

        if measured is not None and not lost:
            write_output(out / "pareto.png", explorer.pareto_png(document))
        if priced is not None and not lost:
            from sdshape.shapes.priced import markdown

            write_output(out / "shapes.md", markdown(document))
            write_output(out / "priced.png", explorer.priced_chart(document))
            if measured is not None:
                write_output(out / "beside.png", explorer.beside_chart(document))
    if args.json:
        print(json.dumps(document, indent=2, default=str))
    elif priced is not None:
        print_priced(document, console)
        if measured is not None:
            print_beside(document, console)
            just_measured = [s for s in document["shapes"] if "measured" in s]
            print_shapes({**document, "shapes": just_measured}, console, "the measured compositions")
    else:
        print_shapes(document, console)
    return 1 if lost else 0


def _check_measure_flags(args: argparse.Namespace) -> None:
    """``--top`` chooses among priced compositions, and the measurement is set beside one card's model."""
    if args.top is not None and not (args.gpu and args.measure):
        raise UsageError(f"--top {args.top} chooses which priced compositions --measure times: give --gpu CARD and "
                         "--measure")  # fmt: skip
    if args.measure and args.gpu and len(args.gpu) > 1:
        raise UsageError(f"shapes --measure sets the measurement beside one priced card: give --gpu once, got "
                         f"{', '.join(args.gpu)}")  # fmt: skip


def _beside_model(document: dict[str, Any], pricing: dict[str, Any], plan: Any, machine: dict, count: int) -> None:
    """Each measured composition's figures beside the model's on the priced card, and where it was measured."""
    from sdshape.shapes.beside import RANKED_BY, against_model, device_of, model_backend, statement

    card = pricing["gpus"][0].name
    device = device_of(machine, pricing["catalog"], card)
    exact = model_backend(*plan.backend(plan.backends[0]))[1]
    for shape in document["shapes"]:
        if "measured" in shape:
            shape["measured"]["against_model"] = against_model(shape, card, device["same_card"], exact)
    document["comparison"] = {
        "card": card,
        **device,
        "statement": statement(card, device),
        "model_backend": pricing["backend"],
        "measured_backend": plan.backends[0],
        "backend_counterpart": exact,
        "measured": count,
        "top": document["measured_conditions"]["top"],
        "ranked_by": RANKED_BY,
    }


def _budget_text(args: argparse.Namespace, budget_bytes: int | None) -> str:
    parts = [f"{args.budget:.3g} parameters"] if args.budget is not None else []
    if budget_bytes is not None:
        parts.append(f"{units.size(budget_bytes)} of {args.precision or 'fp16'} weights")
    return " and ".join(parts)


def _pricing(args: argparse.Namespace, options: RunOptions, plan: Any) -> dict[str, Any]:
    """The cards, the format and the time model for ``--gpu``, checked before anything is traced."""
    from sdshape.feasibility.catalog import load_catalog, pick
    from sdshape.feasibility.formats import weight_format
    from sdshape.feasibility.time_model import BACKENDS, bundled_time_model

    catalog = load_catalog(args.gpu_catalog)
    gpus = pick(catalog, args.gpu)
    missing = [g.name for g in gpus if g.sms is None or g.architecture is None]
    if missing:
        raise UsageError(f"cards without 'architecture' and 'sms' in the catalog cannot be modelled: {missing}")
    fmt = weight_format(options.precision or (plan.options.precision if plan else "fp16"))
    # the model's backends: eager (host launch costs) or compile (CUDA graphs); a measured backend prices as its
    # counterpart (eager CUDA-graph replay as compile), one without a counterpart as eager
    backend = options.backend if options.backend in BACKENDS else "eager"
    if plan is not None:
        from sdshape.shapes.beside import model_backend

        backend = model_backend(*plan.backend(plan.backends[0]))[0]
    return {"gpus": gpus, "format": fmt, "model": bundled_time_model(), "backend": backend, "catalog": catalog,
            "vae_fp16": bool(getattr(args, "vae_fp16", False))}  # fmt: skip


def _price(found: list, pricing: dict[str, Any], resolution: int, steps: int, budget_bytes: int | None) -> tuple:
    """Every composition priced on the cards (progress on stderr while tracing): the rows and the conditions."""
    from sdshape.feasibility.fit import CONTEXT_BYTES
    from sdshape.feasibility.time_model import DEFAULT_HOST
    from sdshape.shapes.priced import price

    fmt, model = pricing["format"], pricing["model"]
    with Console(stderr=True).status("tracing on the meta device") as status:
        rows, over, traces = price(found, pricing["gpus"], model, fmt, resolution, steps, budget_bytes,
                                   pricing["backend"], DEFAULT_HOST, pricing["vae_fp16"], status.update)  # fmt: skip
    conditions = {
        "precision": fmt.name,
        "precision_note": fmt.description,
        "backend": pricing["backend"],
        "host": DEFAULT_HOST,
        "batch": 1,
        "context_bytes": CONTEXT_BYTES,
        "cards": [
            {
                "name": g.name,
                "vram_bytes": g.vram_bytes,
                "architecture": g.architecture,
                "calibrated": model.efficiency(g)[1],
            }
            for g in pricing["gpus"]
        ],
        "stage_traces": {"traced": len(traces.traced), "read_from_cache": traces.read, "which": traces.traced},
        "label": "model: static memory trace and calibrated roofline projection (sdshape fit's); no GPU",
    }
    return {"rows": rows, "conditions": conditions}, over
