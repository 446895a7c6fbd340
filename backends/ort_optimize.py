"""ONNX Runtime's own Stable Diffusion optimization, as its tools run it, cached like every export.

What ``onnxruntime/transformers/models/stable_diffusion`` does (optimize_pipeline.py,
ort_optimizer.py, engine_builder_ort_cuda.py), step by step:

1. an fp32 export with classic attention (``onnx_export.ensure_fp32_onnx``): the
   fusions match fp32 patterns of that graph;
2. the transformer optimizer per model type (``unet``, ``vae``, ``clip``) with
   that type's fusion options: (Multi-Head) Attention with packed QKV and KV
   (UNet, fp16 only, as ORT enables them), GroupNorm in channels-last,
   SkipGroupNorm, NhwcConv, BiasSplitGelu, BiasAdd, SkipLayerNorm. On the CPU
   provider the CUDA-only fusions (GroupNorm, SkipGroupNorm, NhwcConv,
   BiasSplitGelu, BiasAdd, packed QKV/KV) are left off: the CPU has no kernels
   for them;
3. fp16 conversion with ``float16.py``'s default fp32 op block list, except the
   SDXL VAE (``force_upcast``), which ORT keeps in fp32 because it overflows.

The optimizer runs in a spawned child process, after a check that the host has the
memory it needs (about 5 times the fp32 graph for the CPU fusions, over 7.5 times
for the CUDA ones with fp16; see ``HOST_FACTOR``): its peak and its leftovers stay
out of the measuring process, and running out of memory fails this stage, not the run.

The optimized graph is a cache entry of its own, keyed by the fp32 export, the
model type, the precision, the fusion set and ONNX Runtime's version, hashed
and checked like every entry; how many nodes of each fused op it holds is
recorded with it and in every result's artifact notes, so an optimizer that
fused nothing is visible.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from sdshape.backends import onnx_export
from sdshape.backends.base import Artifact
from sdshape.backends.cache import ArtifactSlot
from sdshape.core.errors import UsageError

CUDA_ONLY_FUSIONS = (
    "enable_nhwc_conv",
    "enable_group_norm",
    "enable_skip_group_norm",
    "enable_bias_splitgelu",
    "enable_packed_qkv",
    "enable_packed_kv",
    "enable_bias_add",
)


# ONNX Runtime's transformer-optimizer model type for each denoiser class a stage module wraps: the
# UNet's fusions also match PixArt's DiT blocks (attention, layer norms); SD3's and FLUX's MMDiTs have
# their own. A class not listed gets no fusions (None): plain ORT, stated in the artifact notes.
DENOISER_TYPES: dict[str, str] = {
    "UNet2DConditionModel": "unet",
    "PixArtTransformer2DModel": "unet",
    "SD3Transformer2DModel": "mmdit",
    "FluxTransformer2DModel": "mmdit",
}
# ... for each kind of text encoder (sdshape.models.text_kinds); ORT has no type for decoder LLMs here.
TEXT_TYPES: dict[str, str | None] = {"clip": "clip", "t5": "t5", "decoder_llm": None}
# ... and for each VAE class: ORT's "vae" fusions are written for Stable Diffusion's AutoencoderKL decoder
# (AutoencoderTiny's convolutions take them too); another autoencoder (Sana's deep-compression one, whose
# linear attention the "vae" fusions break: an invalid Transpose) gets none.
VAE_TYPES: dict[str, str] = {"AutoencoderKL": "vae", "AutoencoderTiny": "vae"}


def model_type(module: torch.nn.Module) -> str | None:
    """ORT's optimizer type for a stage module, from what it wraps: the VAE's class's type for a VAE decode,
    the denoiser's class's type for a denoiser step, and for text encoders their kind's (the stack's non-CLIP
    kind where there is one: ``t5`` for SD3's and FLUX's stacks). None: no fusions."""
    from sdshape.models.text_kinds import CLIP, kind_of_class

    vae = getattr(module, "vae", None)
    if vae is not None:
        return VAE_TYPES.get(type(vae).__name__)
    for wrapped in ("unet", "transformer"):
        denoiser = getattr(module, wrapped, None)
        if denoiser is not None:
            return DENOISER_TYPES.get(type(denoiser).__name__)
    kinds = {kind_of_class(type(encoder).__name__) for encoder in getattr(module, "encoders", [])}
    other = sorted(kind.name for kind in kinds if kind is not CLIP)
    return TEXT_TYPES[other[0]] if other else "clip"


def keeps_fp32(module: torch.nn.Module) -> bool:
    """The SDXL VAE stays in fp32 (ORT's optimize_pipeline skips its fp16 conversion: it overflows)."""
    vae = getattr(module, "vae", None)
    return bool(vae is not None and getattr(vae.config, "force_upcast", False))


def fusion_options(kind: str, gpu: bool, fp16: bool) -> Any:
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions(kind)
    if kind in ("unet", "mmdit"):  # as optimize_pipeline.py: packed QKV and KV only for fp16
        options.enable_packed_kv = fp16 and options.enable_packed_kv
        options.enable_packed_qkv = fp16 and options.enable_packed_qkv
    if not gpu:
        for name in CUDA_ONLY_FUSIONS:
            if hasattr(options, name):
                setattr(options, name, False)
    return options


def describe_fusions(counts: dict[str, int], kind: str, gpu: bool) -> str:
    where = "CUDA" if gpu else "CPU"
    listed = ", ".join(f"{op}: {n}" for op, n in counts.items())
    if not any(counts.values()):
        return f"ORT transformer optimizer ({kind}, {where} fusions) fused nothing ({listed})"
    return f"ORT transformer optimizer ({kind}, {where} fusions): {listed}"


def optimize_here(fp32_path: Path, target: Path, kind: str, gpu: bool, fp16: bool) -> dict[str, int]:
    """Optimize ``fp32_path`` into ``target`` (external weights beside it) in this process; the fused-op
    counts. ``optimize`` runs this in a child process."""
    from onnxruntime.transformers.optimizer import optimize_model

    loggers = [logging.getLogger(name) for name in ("onnxruntime.transformers", "fusion_base", "onnx_model")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with onnx_export._quiet():
            model = optimize_model(
                str(fp32_path), model_type=kind, num_heads=0, hidden_size=0, opt_level=0,
                optimization_options=fusion_options(kind, gpu, fp16), use_gpu=gpu,
            )  # fmt: skip
            if fp16:
                model.convert_float_to_float16(keep_io_types=False, op_block_list=None)
            counts = dict(model.get_fused_operator_statistics())
            model.save_model_to_file(str(target), use_external_data_format=True, all_tensors_to_one_file=True)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    return {op: int(n) for op, n in counts.items()}


# Host memory ORT's optimizer takes, per byte of fp32 graph (SD 1.5's UNet, 3.20 GiB, on this project's
# CPU machine): the CPU fusions peaked at 16.45 GiB (5.1x); the CUDA fusions with the fp16 conversion were
# killed at 24.3 GiB (over 7.6x). ORT's README asks 48 GB of memory to optimize SDXL.
HOST_FACTOR = {"cpu": 5.0, "cuda": 7.5}


def host_memory_needed(graph_bytes: int, gpu: bool) -> int:
    """The least host memory the optimizer has been seen to need for a graph of ``graph_bytes``."""
    return int(graph_bytes * HOST_FACTOR["cuda" if gpu else "cpu"])


def check_host_memory(graph_bytes: int, gpu: bool, available: int) -> None:
    """Refuse, with the figures, an optimization that would run the host out of memory: the kernel's
    OOM killer would otherwise end the child (or, in-process, the whole run and every row in it)."""
    needed = host_memory_needed(graph_bytes, gpu)
    if needed > available:
        gib = 1 << 30
        raise RuntimeError(
            f"ORT's transformer optimizer needs about {needed / gib:.1f} GiB of host memory for this "
            f"{graph_bytes / gib:.2f} GiB fp32 graph ({'CUDA' if gpu else 'CPU'} fusions), and "
            f"{available / gib:.1f} GiB is available: use onnxruntime:plain, or a host with more memory"
        )


def optimize(fp32_path: Path, target: Path, kind: str, gpu: bool, fp16: bool) -> dict[str, int]:
    """``optimize_here`` in a fresh (spawned) process.

    The optimizer's peak is several times the graph (above), and what it frees stays in its process's
    heap: in a child, the measuring process's host memory never sees it, and an out-of-memory kill
    ends only the child, which becomes this stage's error."""
    import concurrent.futures
    import multiprocessing
    import os

    context = multiprocessing.get_context("spawn")
    # The optimizer's tqdm bars would cut through sdshape's progress; tqdm reads TQDM_DISABLE when it is
    # imported, so the child inherits it from the environment it is spawned with.
    saved = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            return pool.submit(optimize_here, fp32_path, target, kind, gpu, fp16).result()
    except concurrent.futures.process.BrokenProcessPool as error:
        raise RuntimeError(
            f"ORT's transformer optimizer process died optimizing {fp32_path} (killed for memory?): use "
            "onnxruntime:plain, or a host with more memory"
        ) from error
    finally:
        if saved is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = saved


def ensure_optimized(
    module: torch.nn.Module, example_inputs: tuple[torch.Tensor, ...], slot: ArtifactSlot, precision: str, gpu: bool
) -> tuple[Path, Artifact]:
    """The cached optimized graph for this module, precision and provider, built now if missing or corrupt."""
    fp32_path, fp32_artifact = onnx_export.ensure_fp32_onnx(module, example_inputs, slot)
    kind = model_type(module)
    if kind is None:
        raise UsageError(
            f"ONNX Runtime's optimizer has no model type for {type(module).__name__} (see DENOISER_TYPES, "
            "TEXT_TYPES and VAE_TYPES in backends/ort_optimize.py): run it unoptimized, --backend onnxruntime:plain"
        )
    upcast = keeps_fp32(module)
    fp16 = precision == "fp16" and not upcast
    parts = {
        "fp32_export": onnx_export.fp32_entry(slot).directory.name,
        "model_type": kind,
        "precision": precision,
        "fp16_conversion": fp16,
        "fusions": "cuda" if gpu else "cpu",
        "onnxruntime": onnx_export._version("onnxruntime") or onnx_export._version("onnxruntime-gpu"),
    }
    notes = [*fp32_artifact.notes]
    if upcast and precision == "fp16":
        notes.append("kept in fp32, as ORT keeps the SDXL VAE (force_upcast: it overflows in fp16)")
    elif fp16:
        notes.append("converted to fp16 with float16.py's default fp32 op block list")
    found = slot.lookup("onnx-ort-opt", parts)
    if found is not None:
        notes.append(describe_fusions(found.read_note("fusions") or {}, kind, gpu))
        artifact = Artifact("reused", 0.0, str(found.directory), notes, cached_build_s=found.recorded_build_s())
        return found.path(onnx_export.ONNX_FILE), artifact
    import psutil

    graph_bytes = sum(p.stat().st_size for p in fp32_path.parent.glob(f"{fp32_path.name}*"))
    check_host_memory(graph_bytes, gpu, psutil.virtual_memory().available)  # before any entry is begun
    entry = slot.entry("onnx-ort-opt", parts)
    if entry.directory.exists():
        notes.append("previous entry was incomplete or corrupt: rebuilt")
    entry.reset()
    start = time.perf_counter()
    counts = optimize(fp32_path, entry.path(onnx_export.ONNX_FILE), kind, gpu, fp16)
    build_s = time.perf_counter() - start
    entry.write_note("fusions", counts)
    entry.commit(build_s)
    notes.append(describe_fusions(counts, kind, gpu))
    total = build_s + (fp32_artifact.build_s if fp32_artifact.cache == "built" else 0.0)
    return entry.path(onnx_export.ONNX_FILE), Artifact("built", total, str(entry.directory), notes)


def weight_files(path: Path) -> list[str]:
    """The graph's external weight files: their bytes are what the session holds on the device, at least
    (ONNX Runtime maps them on the CPU)."""
    return sorted(str(p) for p in Path(path).parent.glob(f"{Path(path).name}*.data"))
