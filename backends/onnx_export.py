"""Export a stage module to ONNX once and keep it in the artifact cache.

Shared by the onnxruntime and tensorrt backends: an exported file depends on
the module, its input shapes and dtypes and the exporter's versions, not on
who runs it. Weights go to an external data file, which is also what graphs
over 2 GB (the SDXL UNet) require. Two exports:

- :func:`ensure_onnx` (``onnxruntime:plain``): torch.onnx's dynamo exporter at
  the run's precision, the graph as PyTorch gives it;
- :func:`ensure_fp32_onnx` (ORT's optimizer, TensorRT): fp32, with diffusers'
  classic attention processors and transformers' eager attention, through
  torch.onnx's TorchScript exporter at opset 17, as ONNX Runtime's own Stable
  Diffusion tools export (they remove ``scaled_dot_product_attention`` for the
  export). Their fusions match fp32 patterns of that exporter: on the tiny UNet
  the dynamo exporter's graph gave 0 GroupNorm, SkipGroupNorm, BiasSplitGelu,
  BiasAdd and MultiHeadAttention fusions, the TorchScript graph 8, 23, 6, 6 and 12.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import inspect
import io
import logging
import time
import warnings
from collections.abc import Callable, Iterator
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

    def build(path: Path) -> None:
        export(module, example_inputs, path)

    return _cached(slot, "onnx", onnx_parts(), build)


def _cached(
    slot: ArtifactSlot, kind: str, parts: dict[str, Any], build: Callable[[Path], str | None]
) -> tuple[Path, Artifact]:
    """The valid ``kind`` entry's graph, reused; else ``build(path)`` writes it, timed, and the entry is
    committed. ``build`` may return which exporter ran: it is kept with the entry and noted either way."""
    found = slot.lookup(kind, parts)
    if found is not None:
        reused = Artifact("reused", 0.0, str(found.directory), cached_build_s=found.recorded_build_s())
        if (exporter := found.read_note("exporter")) is not None:
            reused.notes.append(f"fp32 export: {exporter}")
        return found.path(ONNX_FILE), reused
    entry = slot.entry(kind, parts)
    notes = ["previous entry was incomplete or corrupt: rebuilt"] if entry.directory.exists() else []
    if slot.fallback is not None:
        notes.append(f"cache {slot.root} is read-only: built in {slot.fallback}")
    entry.reset()
    start = time.perf_counter()
    exporter = build(entry.path(ONNX_FILE))
    build_s = time.perf_counter() - start
    if exporter is not None:
        entry.write_note("exporter", exporter)
        notes.append(f"fp32 export: {exporter}")
    entry.commit(build_s)
    return entry.path(ONNX_FILE), Artifact("built", build_s, str(entry.directory), notes)


def invalidate(slot: ArtifactSlot) -> None:
    found = slot.lookup("onnx", onnx_parts())
    if found is not None:
        found.drop()


FP32_OPSET = 17


def _matmul_scores(attn: Any, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None = None) -> Any:
    """Diffusers' ``Attention.get_attention_scores`` as MatMul, then Mul by the scale, then Softmax.

    The original adds ``baddbmm`` over ``torch.empty(batch x heads, tokens, tokens)`` with beta 0, and
    the exporter's constant folding turns that into a zero constant of that size in the graph: 64 MiB
    per self-attention layer at 256 px, 1 GiB at 512 px (SD 1.5's fp32 UNet export grew by 392 MB at
    256 px). MatMul-Mul-Softmax is also the pattern ORT's UNet attention fusion matches."""
    dtype = query.dtype
    if attn.upcast_attention:
        query, key = query.float(), key.float()
    scores = torch.matmul(query, key.transpose(-1, -2)) * attn.scale
    if mask is not None:
        scores = scores + mask
    if attn.upcast_softmax:
        scores = scores.float()
    return scores.softmax(dim=-1).to(dtype)


@contextlib.contextmanager
def classic_attention(module: torch.nn.Module) -> Iterator[None]:
    """Diffusers' classic attention processor (scores as ``_matmul_scores``) and transformers' eager
    attention for the export: the graph ORT's attention fusions recognise. The SDPA processor's export
    fused no attention at all (its query and key scales do not match ORT's pattern). The module's own
    processors are restored after."""
    import types

    models = [child for child in module.modules() if hasattr(child, "set_attn_processor")]
    saved = [model.attn_processors for model in models]
    encoders = [child for child in module.modules() if hasattr(child, "set_attn_implementation")]
    implementations = [getattr(encoder.config, "_attn_implementation", None) for encoder in encoders]
    patched = [child for child in module.modules() if hasattr(child, "get_attention_scores")]
    try:
        from diffusers.models.attention_processor import AttnProcessor

        for model in models:
            model.set_attn_processor(AttnProcessor())
        for attn in patched:
            attn.get_attention_scores = types.MethodType(_matmul_scores, attn)
        for encoder in encoders:
            encoder.set_attn_implementation("eager")
        yield
    finally:
        for attn in patched:
            del attn.get_attention_scores
        for model, processors in zip(models, saved, strict=True):
            model.set_attn_processor(processors)
        for encoder, implementation in zip(encoders, implementations, strict=True):
            if implementation:
                encoder.set_attn_implementation(implementation)


def export_fp32(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> str:
    """An fp32 copy of the module, on the host, exported with the TorchScript exporter; returns which."""
    import copy
    import shutil

    twin = copy.deepcopy(module).to("cpu", torch.float32)
    args = tuple(t.detach().clone().to("cpu", torch.float32 if t.is_floating_point() else t.dtype) for t in inputs)
    names = input_names(module, len(args))
    # Over 2 GB the TorchScript exporter writes one file per tensor beside the graph: export into a
    # scratch folder, gather the weights into one file beside the entry's graph, then drop the scratch.
    scratch = path.parent / "export-scratch"
    scratch.mkdir(exist_ok=True)
    raw = scratch / path.name
    try:
        with _quiet() as log, classic_attention(twin):
            try:
                torch.onnx.export(twin, args, str(raw), input_names=names, dynamo=False, opset_version=FP32_OPSET,
                                  do_constant_folding=True)  # fmt: skip
                exporter = f"TorchScript exporter, opset {FP32_OPSET}"
            except Exception as error:  # a torch without the TorchScript exporter: the dynamo one, said so
                try:
                    torch.onnx.export(twin, args, str(raw), input_names=names, dynamo=True, external_data=True)
                except Exception as fallback:
                    tail = " | ".join(log.getvalue().strip().splitlines()[-3:])
                    raise RuntimeError(f"fp32 ONNX export failed: {fallback}; exporter said: {tail}") from error
                exporter = f"dynamo exporter (the TorchScript exporter failed: {str(error).splitlines()[0][:120]})"
        del twin
        _external(raw, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return exporter


def _external(source: Path, path: Path) -> None:
    """Save ``source`` as ``path`` with its weights in ``model.onnx.data`` beside it (graphs over 2 GB
    need it; one layout whatever the exporter wrote)."""
    import onnx

    model = onnx.load(str(source), load_external_data=True)
    for stale in path.parent.glob(f"{path.name}*.data"):
        stale.unlink()
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=f"{path.name}.data", size_threshold=1024)  # fmt: skip


def fp32_parts() -> dict[str, Any]:
    return {"torch": torch.__version__, "onnx": _version("onnx"), "exporter": "torchscript-fp32", "opset": FP32_OPSET}


def fp32_entry(slot: ArtifactSlot) -> CacheEntry:
    """The fp32 export's valid entry (in the cache or its fallback), else where a new one is built."""
    return slot.lookup("onnx-fp32", fp32_parts()) or slot.entry("onnx-fp32", fp32_parts())


def ensure_fp32_onnx(
    module: torch.nn.Module, example_inputs: tuple[torch.Tensor, ...], slot: ArtifactSlot
) -> tuple[Path, Artifact]:
    """The cached fp32 export of this module (for ORT's optimizer and TensorRT), exported now if needed."""
    return _cached(slot, "onnx-fp32", fp32_parts(), lambda path: export_fp32(module, example_inputs, path))
