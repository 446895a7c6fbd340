"""The words sdshape uses, defined once: stages and component kinds, result ids, devices, precisions.

Every other module reads these from here. Nothing here imports torch, so the
reading side (compare, history, report) can use them without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sdshape.core.errors import choices_error

# The four measured stages, in pipeline order; the first three are one image's parts.
STAGES = ("text_encoder", "denoise_loop", "vae_decode", "pipeline")
PER_IMAGE_STAGES = STAGES[:3]
# The three component kinds, and which stage runs which. The denoiser is a UNet or a transformer (DiT, MMDiT):
# the model family decides (``sdshape.models.families``); the measurement core never does.
KINDS = ("text_encoder", "denoiser", "vae")
STAGE_OF_KIND = dict(zip(KINDS, PER_IMAGE_STAGES, strict=True))
KIND_OF_STAGE = {stage: kind for kind, stage in STAGE_OF_KIND.items()}
KINDS_OF_STAGE = {**{stage: (kind,) for stage, kind in KIND_OF_STAGE.items()}, "pipeline": KINDS}

# Names written before the model families existed, read as today's: every old result file still reads.
LEGACY_STAGES = {"unet_loop": "denoise_loop"}
LEGACY_KINDS = {"unet": "denoiser"}


def current_stage(name: str) -> str:
    return LEGACY_STAGES.get(name, name)


def current_kind(name: str) -> str:
    return LEGACY_KINDS.get(name, name)


def current_keys(mapping: dict[str, Any] | None) -> dict[str, Any] | None:
    """A dict keyed by stage or kind names, with any legacy key renamed (other keys kept as they are)."""
    if not isinstance(mapping, dict):
        return mapping
    return {current_kind(current_stage(key)): value for key, value in mapping.items()}


# A result's stable identity: regression tools match results across files by these.
ID_FIELDS = ("stage", "shape", "backend", "precision", "batch", "resolution", "steps")

# How each metric is measured, versioned: a row records the versions it was measured under (``methods``),
# and compare/history call a difference in them "method changed", never a regression or an improvement.
# time 1: synchronized rounds after warm-up, median (the first method; unchanged since).
# memory 1: peaks over a baseline read when the session began, whatever was still resident (the first
#   H100 run: negative peaks). memory 2: peaks over a settled baseline, every figure through the rules.
# energy 1: NVML's energy counter over the timed rounds. energy 2: over a window sized to the counter's
#   update period (``sdshape.measurement.energy``).
METHODS = {"time": 1, "memory": 2, "energy": 2}
RUN_FIELDS = ID_FIELDS[1:]  # one run's stages share these

DEVICES = ("cuda", "cpu")

# Residency policies, as diffusers implements them (``sdshape run --policy``, ``sdshape fit``), from the one
# that moves nothing to the one that moves the most:
# all_resident: every component on the GPU; text_encoders_dropped: the text encoders run first and are
# freed; model_offload: enable_model_cpu_offload; group_offload_*: enable_group_offload at block level
# (one block a group) or leaf level, with use_stream (prefetch on a side stream, pinned host memory) or
# without; sequential_offload: enable_sequential_cpu_offload.
POLICIES = (
    "all_resident",
    "text_encoders_dropped",
    "model_offload",
    "group_offload_block_stream",
    "group_offload_block",
    "group_offload_leaf_stream",
    "group_offload_leaf",
    "sequential_offload",
)
DEFAULT_POLICY = "all_resident"


def calls_per_image(kind: str, steps: int) -> int:
    """Module calls per image and prompt batch: the denoiser once per step (CFG rows batched), the others once."""
    return steps if kind == "denoiser" else 1


@dataclass(frozen=True)
class Precision:
    """Everything that depends on the precision, in one row."""

    name: str
    torch_dtype: str  # the attribute of ``torch``
    bytes_per_param: int
    parity_tolerance: float  # relative L2 error against eager fp32 over a whole stage output
    tensorrt_flag: str | None  # the TensorRT BuilderFlag that enables it
    storage: str | None = None  # a quantized weight format (sdshape.models.quantize); computes in ``torch_dtype``

    def dtype(self) -> Any:
        import torch

        return getattr(torch, self.torch_dtype)


# Tolerances are loose enough for each precision's rounding compounded through a 50-step loop, and tight
# enough that a wrong graph (a dropped op, a mixed-up input) fails by orders of magnitude.
PRECISIONS: dict[str, Precision] = {
    p.name: p
    for p in (
        Precision("fp32", "float32", 4, 1e-3, None),
        Precision("fp16", "float16", 2, 5e-2, "FP16"),
        Precision("bf16", "bfloat16", 2, 1e-1, "BF16"),
        # Weight formats with bf16 compute; bytes_per_param is the size check's upper bound (formats keep
        # norms and the VAE in bf16). Measured errors: docs/measurement.md, "Weight formats in runs".
        Precision("fp8", "bfloat16", 2, 2.5e-1, None, storage="fp8"),
        Precision("int8", "bfloat16", 2, 1.5e-1, None, storage="int8"),
        Precision("nf4", "bfloat16", 2, 3e-1, None, storage="nf4"),
        # GGUF (diffusers' GGUFLinear; the denoiser only). Each takes the tolerance of the format whose rounding
        # it matches, measured on one 4096 -> 256 Linear against fp32 (bench/format_parity_by_shape.py, 2026-12-04):
        # Q8_0 0.006 as int8 0.009; Q5_K 0.038, Q4_K 0.078 and Q4_0 0.087 as NF4 0.092 (Q5_K, near fp8's 0.033,
        # keeps the 4-bit bound: the K-quant packer's min-max scales are an upper bound on llama.cpp's error).
        # On the tiny shapes the largest pipeline error was 0.081 (tiny-sd3, bf16's own), Q4_0's furthest above
        # bf16 +0.036 (tiny-xl): far inside every bound.
        Precision("gguf-q8_0", "bfloat16", 2, 1.5e-1, None, storage="gguf-q8_0"),
        Precision("gguf-q5_k", "bfloat16", 2, 3e-1, None, storage="gguf-q5_k"),
        Precision("gguf-q4_k", "bfloat16", 2, 3e-1, None, storage="gguf-q4_k"),
        Precision("gguf-q4_0", "bfloat16", 2, 3e-1, None, storage="gguf-q4_0"),
    )
}
PRECISION_NAMES = tuple(PRECISIONS)


def precision(name: str) -> Precision:
    """The precision named ``name``; an unknown name is a usage error naming the choices."""
    if name not in PRECISIONS:
        raise choices_error("precision", name, PRECISION_NAMES)
    return PRECISIONS[name]


def weight_bytes_by_precision(params: int) -> dict[str, int]:
    """Plain precisions only: a quantized format's bytes depend on its layers (``sdshape fit``)."""
    return {p.name: params * p.bytes_per_param for p in PRECISIONS.values() if p.storage is None}
