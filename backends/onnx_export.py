"""Export a stage module to ONNX once and keep it in the artifact cache.

Shared by the onnxruntime and tensorrt backends: an exported file depends on
the module, its input shapes and dtypes and the exporter's versions, not on
who runs it. torch.onnx's dynamo exporter is used (torch >= 2.5); weights go to
an external data file, which is also what graphs over 2 GB (the SDXL UNet)
require.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import inspect
import io
import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from sdshape.backends.base import Artifact
from sdshape.backends.cache import ArtifactSlot, CacheEntry

ONNX_FILE = "model.onnx"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def exporter_available() -> tuple[bool, str | None]:
    missing = [name for name in ("onnx", "onnxscript") if _version(name) is None]
    if missing:
        return False, f"torch.onnx's exporter needs {' and '.join(missing)} (pip install 'sdshape[onnx]')"
    return True, None


def input_names(module: torch.nn.Module, count: int) -> list[str]:
    """The forward() parameter names of the first ``count`` inputs: the ONNX graph's input names."""
    parameters = list(inspect.signature(module.forward).parameters)
    return parameters[:count]


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """The exporter prints progress to stdout and warns about unrelated ops; keep our output clean."""
    captured = io.StringIO()
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with contextlib.redirect_stdout(captured), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield captured
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export(module: torch.nn.Module, example_inputs: tuple[torch.Tensor, ...], path: Path) -> None:
    # Inputs made under inference_mode cannot be traced; clones made outside it can.
    args = tuple(t.detach().clone() for t in example_inputs)
    with _quiet() as log:
        try:
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=input_names(module, len(args)),
                dynamo=True,
                external_data=True,
                optimize=True,
            )
        except Exception as error:
            tail = log.getvalue().strip().splitlines()[-3:]
            raise RuntimeError(f"ONNX export failed: {error}; exporter said: {' | '.join(tail)}") from error


def onnx_parts() -> dict[str, Any]:
    return {"torch": torch.__version__, "onnx": _version("onnx"), "onnxscript": _version("onnxscript")}


def onnx_entry(slot: ArtifactSlot) -> CacheEntry:
    """The export's valid entry (in the cache or its fallback), else where a new one is built."""
    return slot.lookup("onnx", onnx_parts()) or slot.entry("onnx", onnx_parts())


def ensure_onnx(
    module: torch.nn.Module, example_inputs: tuple[torch.Tensor, ...], slot: ArtifactSlot
) -> tuple[Path, Artifact]:
    """The cached ONNX file for this module and these inputs, exported now if missing or corrupt."""
    found = slot.lookup("onnx", onnx_parts())
    if found is not None:
        reused = Artifact("reused", 0.0, str(found.directory), cached_build_s=found.recorded_build_s())
        return found.path(ONNX_FILE), reused
    entry = slot.entry("onnx", onnx_parts())
    path = entry.path(ONNX_FILE)
    notes = ["previous entry was incomplete or corrupt: rebuilt"] if entry.directory.exists() else []
    if slot.fallback is not None:
        notes.append(f"cache {slot.root} is read-only: built in {slot.fallback}")
    entry.reset()
    start = time.perf_counter()
    export(module, example_inputs, path)
    build_s = time.perf_counter() - start
    entry.commit(build_s)
    return path, Artifact("built", build_s, str(entry.directory), notes)


def invalidate(slot: ArtifactSlot) -> None:
    found = slot.lookup("onnx", onnx_parts())
    if found is not None:
        found.drop()
