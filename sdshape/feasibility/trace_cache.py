"""The trace cache behind ``sdshape fit``: one meta-device trace per shape, settings and compute dtype, on disk.

A trace of SDXL takes seconds on 2 CPU cores, and one trace serves every weight format of its compute dtype;
the answer should take none of them. Traces live beside the exported models (``$SDSHAPE_CACHE_DIR``, else
the user cache dir), under ``static/``, keyed by the configs, the tracing code, sdshape's and torch's
versions; a file that cannot be read is traced again, and a read-only home still gets its answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
from collections.abc import Callable
from functools import cache
from pathlib import Path

import torch

from sdshape import __version__
from sdshape.backends.cache import cache_key, default_root
from sdshape.feasibility.formats import WeightFormat
from sdshape.feasibility.static import ShapeStatic, static_shape, with_tiled_decode
from sdshape.models.zoo import ShapeSpec, shape_components
from sdshape.result.output import write_atomic

# The code a cached trace is made by: a change to any of it traces again.
HERE = Path(__file__).parent
SOURCE_FILES = ("static.py", "trace.py", "formats.py", "dequant.py", "../models/quantize.py")
TRACE_SOURCES = tuple((HERE / name).resolve() for name in SOURCE_FILES)


@cache
def _model_code() -> str:
    """The static model's own code, so that a cached trace made by another version is never reused."""
    return hashlib.sha256(b"".join(p.read_bytes() for p in TRACE_SOURCES)).hexdigest()


def _cache_file(shape: ShapeSpec, key: tuple) -> Path:
    """Beside the exported models (``$SDSHAPE_CACHE_DIR``, else the user cache dir), under ``static/``."""
    digest = cache_key({
        "model_code": _model_code(), "sdshape": __version__, "torch": torch.__version__, "key": list(key),
        "components": {kind: [s.name, s.config] for kind, s in shape_components(shape).items()},
    })  # fmt: skip
    return default_root() / "static" / f"{shape.name}-{digest[:16]}.pkl"


def cached_static(
    shape: ShapeSpec,
    resolution: int,
    steps: int,
    batch: int,
    fmt: WeightFormat,
    vae_fp16: bool,
    tiled: bool,
    progress: Callable[[str], None] | None = None,
) -> ShapeStatic:
    """The traced shape in ``fmt``, from the trace cache when the same configs were traced before at the same
    compute dtype (one trace serves every format of that dtype; a trace of SDXL takes seconds, the answer
    should not). A cache file that cannot be read is traced again."""
    compute = str(fmt.compute_dtype).removeprefix("torch.")
    path = _cache_file(shape, (resolution, batch, compute, vae_fp16, tiled))
    if path in _LOADED:
        return dataclasses.replace(_LOADED[path].as_format(fmt), steps=steps)
    try:
        static = pickle.loads(path.read_bytes())
        if isinstance(static, ShapeStatic):
            _LOADED[path] = static
            return dataclasses.replace(static.as_format(fmt), steps=steps)
    except Exception:
        pass
    if tiled:
        full = cached_static(shape, resolution, steps, batch, fmt, vae_fp16, False, progress)
        static = with_tiled_decode(full, shape, fmt, vae_fp16)
    else:
        static = static_shape(shape, resolution, steps, batch, fmt, vae_fp16, progress)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, pickle.dumps(static))
    except OSError:
        pass  # a read-only home still gets its answer
    _LOADED[path] = static
    return dataclasses.replace(static.as_format(fmt), steps=steps)


_LOADED: dict[Path, ShapeStatic] = {}  # one process reads each cached trace once, whatever the formats asked
