"""``sdshape fit``: which cards a shape fits, under which policy, how fast; from the static model alone."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from sdshape.present.fit_tables import best_table, fit_table


def cmd_fit(args: argparse.Namespace, console: Console) -> int:
    from sdshape.config.resolvers import zoo_shape_size
    from sdshape.core.errors import choices_error
    from sdshape.feasibility.catalog import load_catalog, pick
    from sdshape.feasibility.fit import fit
    from sdshape.feasibility.formats import weight_format
    from sdshape.feasibility.time_model import BACKENDS, bundled_time_model

    shape, steps, resolution = zoo_shape_size(args.shape, args.steps, args.resolution)
    fmt = weight_format(args.precision)
    if args.backend not in BACKENDS:
        raise choices_error("backend", args.backend, list(BACKENDS))
    gpus = pick(load_catalog(args.gpu_catalog), args.gpu)
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
