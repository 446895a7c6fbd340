"""Per-stage static cost of a shape at any settings: weight bytes in a format, the traced activation peak,
and the kernels one call launches. No GPU, no weights, no earlier run.

The VAE decodes in fp32 when its config says ``force_upcast`` (the SDXL VAE), as diffusers' SDXL
pipeline does, unless the user asks for the fp16 decode (the fp16-fix VAE's way); the row says which.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from sdshape.core.vocabulary import KIND_OF_STAGE, STAGE_OF_KIND, calls_per_image
from sdshape.feasibility.formats import FORMATS, WeightFormat, stored_weights
from sdshape.feasibility.trace import Trace, trace_call
from sdshape.models.build import meta_module
from sdshape.models.call_inputs import call_shapes
from sdshape.models.families import family_of
from sdshape.models.families.base import Family, vae_scale_factor
from sdshape.models.flops import meta_inputs
from sdshape.models.zoo import ComponentSpec, ShapeSpec, shape_components

# cuDNN's convolution workspace, in bytes per byte of the convolution's output: the one constant the
# activation peaks needed beyond the trace. Calibrated on the H100 SD 1.5 VAE decode at 512 px (traced
# 402.7 MB without it, 639.7 MB measured); it then reproduces the SDXL VAE at 1024 px (2,550 MB against
# 2,553 MB measured) and leaves the UNets' peaks unchanged (their peak is not at a convolution).
CONV_WORKSPACE_PER_OUTPUT_BYTE = 2.0


@dataclass(frozen=True)
class Variant:
    """A stage's component stored in one weight format: its bytes, its dequantization transient, and the
    quantized Linear calls one stage call makes (what the format's per-call cost scales with)."""

    weight_bytes: int
    transient_bytes: int
    quantized_params_per_call: int = 0  # weight elements over every quantized Linear call
    quantized_outputs_per_call: int = 0  # output elements of those calls
    quantized_calls: int = 0
    unquantized_bytes: int = 0  # Linear weights a library keeps out of the format


@dataclass
class StageStatic:
    """One stage of a shape at given settings, as the model sees it, in one weight format (``variants``
    holds every format of the same compute dtype, so one trace answers them all)."""

    stage: str
    component: str
    dtype: str
    weight_bytes: int
    transient_bytes: int  # a layer upcast or dequantized for its call (fp8, NF4, GGUF)
    trace: Trace
    calls_per_image: int
    largest_layer_bytes: int
    notes: list[str] = field(default_factory=list)
    largest_group_bytes: int = 0  # the largest block-level group (at the compute dtype)
    repeats: int = 1  # calls a stage makes of its traced call: the tiles of a tiled, sliced VAE decode
    tensor_count: int = 0  # parameter and buffer tensors: one host-GPU copy each when a policy moves them
    quantized_params_per_call: int = 0
    quantized_outputs_per_call: int = 0
    quantized_calls: int = 0
    unquantized_bytes: int = 0
    variants: dict[str, Variant] = field(default_factory=dict)

    @property
    def activation_peak_bytes(self) -> int:
        return self.trace.activation_peak_bytes + self.transient_bytes

    @property
    def stored_fraction(self) -> float:
        """Stored over plain bytes: what a layer or a group held in this format weighs, near enough."""
        plain = self.variants.get(_plain_name(self.dtype))
        return self.weight_bytes / plain.weight_bytes if plain and plain.weight_bytes else 1.0

    def in_format(self, name: str) -> StageStatic:
        """This stage with its component stored in format ``name`` (one of ``variants``)."""
        return dataclasses.replace(self, **dataclasses.asdict(self.variants[name]))


@dataclass
class ShapeStatic:
    shape: str
    resolution: int
    steps: int
    batch: int
    precision: str
    guidance: str
    stages: dict[str, StageStatic]

    @property
    def weight_bytes(self) -> int:
        return sum(s.weight_bytes for s in self.stages.values())

    def as_format(self, fmt: WeightFormat, keep_fp32: bool | None = None) -> ShapeStatic:
        """The same trace with the weights stored in ``fmt``: quantized in the components ``fmt.kinds`` names
        (the VAE never), plain at the stage's compute dtype elsewhere. ``keep_fp32``: the layers a library
        keeps out of the format are held in fp32, not bf16 (None: as the installed libraries do)."""
        keep_fp32 = keeps_fp32(fmt) if keep_fp32 is None else keep_fp32
        stages = {}
        for name, stage in self.stages.items():
            quantized = fmt.quantized and KIND_OF_STAGE[name] in fmt.kinds and fmt.name in stage.variants
            resolved = stage.in_format(fmt.name if quantized else _plain_name(stage.dtype))
            if quantized and keep_fp32 and resolved.unquantized_bytes:
                resolved = dataclasses.replace(
                    resolved, weight_bytes=resolved.weight_bytes + resolved.unquantized_bytes
                )
                resolved.notes = [*resolved.notes, "layers kept out of the format held in fp32 (_keep_in_fp32_modules)"]
            stages[name] = resolved
        return dataclasses.replace(self, precision=fmt.name, stages=stages)


def keeps_fp32(fmt: WeightFormat) -> bool:
    """Whether a bitsandbytes load holds ``_keep_in_fp32_modules`` (T5's ``wo``) in fp32 with the installed
    transformers: 4.x did (its bitsandbytes quantizer set ``use_keep_in_fp32_modules``); 5.x upcasts them
    only for fp16 loads, and the quantized formats compute in bf16."""
    if fmt.name != "nf4":
        return False
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("transformers").split(".")[0]) < 5
    except (PackageNotFoundError, ValueError):
        return False


def _plain_name(dtype: str) -> str:
    return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}[dtype]


def _largest_leaf_bytes(module: torch.nn.Module, width: int) -> int:
    """The largest single layer's weights: what sequential offload holds on the GPU at once."""
    largest = 0
    for layer in module.modules():
        own = sum(p.numel() for p in layer.parameters(recurse=False))
        largest = max(largest, own * width)
    return largest


@contextmanager
def _linear_calls(module: torch.nn.Module) -> Iterator[list[tuple[int, int, int]]]:
    """Record each Linear call while the stage is traced: (layer id, weight elements, output elements)."""
    calls: list[tuple[int, int, int]] = []

    def hook(layer: torch.nn.Module, _inputs: Any, output: Any) -> None:
        calls.append((id(layer), layer.weight.numel(), output.numel()))  # type: ignore[union-attr]

    handles = [layer.register_forward_hook(hook) for layer in module.modules() if isinstance(layer, torch.nn.Linear)]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def _largest_block_bytes(module: torch.nn.Module, width: int) -> int:
    """What ``enable_group_offload(offload_type="block_level", num_blocks_per_group=1)`` holds on the GPU at
    once: in each library model, every element of a direct child ModuleList or Sequential is a group, and all
    the other direct children together are one more (diffusers' ``_apply_group_offloading_block_level``),
    onloaded when the model's forward starts and offloaded when it ends, so it is resident beside each block
    (the SDXL UNet's mid block beside its largest up block). A model without such a list (T5EncoderModel:
    ``shared`` and ``encoder``) is one group, whole."""
    from sdshape.models.quantize import library_models

    largest = 0
    for model in library_models(module):
        unmatched, biggest = sum(p.numel() for p in model.parameters(recurse=False)), 0
        for child in model.children():
            if isinstance(child, (torch.nn.ModuleList, torch.nn.Sequential)):
                for block in child:
                    biggest = max(biggest, sum(p.numel() for p in block.parameters()))
            else:
                unmatched += sum(p.numel() for p in child.parameters())
        largest = max(largest, unmatched + biggest)
    return largest * width


def static_shape(
    shape: ShapeSpec,
    resolution: int,
    steps: int,
    batch: int,
    fmt: WeightFormat,
    vae_fp16: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ShapeStatic:
    """Trace every stage of ``shape`` at these settings."""
    specs = shape_components(shape)
    family = family_of(specs["denoiser"])
    shapes = call_shapes(specs, batch, resolution, shape.sequence_length, shape.guidance_scale)
    stages = {
        STAGE_OF_KIND[kind]: _stage(kind, spec, family, shapes.for_kind(kind), steps, fmt, vae_fp16, None, progress)
        for kind, spec in specs.items()
    }
    return ShapeStatic(shape.name, resolution, steps, batch, fmt.name, shapes.guidance, stages)


def with_tiled_decode(static: ShapeStatic, shape: ShapeSpec, fmt: WeightFormat, vae_fp16: bool = False) -> ShapeStatic:
    """The same shape with the VAE decoding one tile, one image at a time (``enable_vae_tiling`` and
    ``enable_vae_slicing``): tiles of the VAE's ``sample_size``, used only when the image is larger."""
    specs = shape_components(shape)
    family = family_of(specs["denoiser"])
    vae = specs["vae"]
    shapes = call_shapes(specs, static.batch, static.resolution, shape.sequence_length, shape.guidance_scale)
    tile = min(static.resolution, int(vae.config.get("sample_size") or static.resolution))
    decode = _stage("vae", vae, family, shapes.vae, static.steps, fmt, vae_fp16, tile, None)
    decode.repeats = static.batch * tiles_per_side(static.resolution, tile) ** 2
    return dataclasses.replace(static, stages={**static.stages, "vae_decode": decode})


def tiles_per_side(resolution: int, tile: int, overlap: float = 0.25) -> int:
    """Tiles along one side of a tiled decode: AutoencoderKL's ``tiled_decode`` steps over the latents by
    the tile's latent size less a quarter overlap (``tile_overlap_factor = 0.25``); one tile when it fits."""
    if resolution <= tile:
        return 1
    latent, tile_latent = resolution // 8, tile // 8
    stride = int(tile_latent * (1 - overlap))
    return -(-latent // stride)


def _stage(
    kind: str,
    spec: ComponentSpec,
    family: Family,
    inputs: dict[str, tuple[int, ...]],
    steps: int,
    fmt: WeightFormat,
    vae_fp16: bool,
    vae_tile: int | None,
    progress: Callable[[str], None] | None,
) -> StageStatic:
    dtype, notes = fmt.compute_dtype, []
    if kind == "vae" and dtype == torch.float16 and family.upcasts_vae(spec):
        if vae_fp16:
            notes.append(
                "VAE decoded in fp16 although its config says force_upcast (--vae-fp16, the fp16-fix VAE's way)"
            )
        else:
            dtype = torch.float32
            notes.append("VAE upcast to fp32 for the decode: its config says force_upcast, as the SDXL pipeline does")
    if progress:
        progress(f"tracing {STAGE_OF_KIND[kind]} ({spec.name}, {str(dtype).removeprefix('torch.')})")
    module = meta_module(spec, family).to(dtype)
    if kind == "vae" and vae_tile is not None:
        latents = inputs["latents"]
        side = max(1, vae_tile // vae_scale_factor(spec))
        inputs = {"latents": (1, latents[1], *(min(d, side) for d in latents[2:]))}
        notes.append(f"VAE decode of one {vae_tile} px tile, one image at a time (tiling and slicing)")
    with _linear_calls(module) as calls:
        trace = trace_call(module, meta_inputs(inputs, dtype), CONV_WORKSPACE_PER_OUTPUT_BYTE)
    variants = _variants(module, dtype, calls, quantizable=kind != "vae")
    width = torch.empty((), dtype=dtype).element_size()
    stage = StageStatic(
        stage=STAGE_OF_KIND[kind],
        component=spec.name,
        dtype=str(dtype).removeprefix("torch."),
        weight_bytes=0,
        transient_bytes=0,
        trace=trace,
        calls_per_image=calls_per_image(kind, steps),
        largest_layer_bytes=_largest_leaf_bytes(module, width),
        notes=notes,
        largest_group_bytes=_largest_block_bytes(module, width),
        tensor_count=sum(1 for _ in module.parameters()) + sum(1 for _ in module.buffers()),
        variants=variants,
    )
    quantized = fmt.quantized and kind in fmt.kinds and fmt.name in variants
    return stage.in_format(fmt.name if quantized else _plain_name(stage.dtype))


def _variants(
    module: torch.nn.Module, dtype: torch.dtype, calls: list[tuple[int, int, int]], quantizable: bool
) -> dict[str, Variant]:
    """The component in every format that computes in ``dtype`` (the plain one, and each quantized format)."""
    variants = {}
    for fmt in FORMATS.values():
        if fmt.compute_dtype != dtype or (fmt.quantized and not quantizable):
            continue
        stored = stored_weights(module, fmt)
        mine = [(w, o) for layer, w, o in calls if layer in stored.quantized_layers]
        variants[fmt.name] = Variant(
            stored.bytes, stored.transient_bytes, sum(w for w, _ in mine), sum(o for _, o in mine), len(mine),
            stored.unquantized_bytes,
        )  # fmt: skip
    return variants
