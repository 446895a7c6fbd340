"""Weight storage formats consumer users run: the bytes each stores per layer, which layers it leaves alone,
and what each call of a quantized layer costs on top of the matmul.

Why per layer: every format below quantizes only some layers (Linear, or Linear and Conv) and keeps the
rest (norms, embeddings, the layers a library keeps unquantized) at the compute dtype, so a model's bytes
depend on which layers it has, not only on its parameter count; and every quantized layer pays its
dequantization on every call, so a model's time depends on how many such calls a step makes.

- ``fp32``, ``fp16``, ``bf16``: every tensor at that width.
- ``fp8``: diffusers' ``enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn,
  compute_dtype=torch.bfloat16)``. Linear and Conv layers (weight and bias) are stored in 1 byte, except
  those ``enable_layerwise_casting`` keeps (its default patterns, and the model class's own: T5's
  ``wo``, PixArt's ``adaln_single``), matched on names within each library model. Each call casts the
  layer up to bf16 and back down after it (``LayerwiseCastingHook.pre_forward``/``post_forward``).
- ``int8``: torchao ``Int8WeightOnlyConfig`` (torchao 0.18): Linear weights in int8 with one scale per
  output row; each call casts the int8 weight to bf16 for ``torch.mm`` and scales the output
  (``Int8Tensor``'s weight-only linear).
- ``nf4``: bitsandbytes 4-bit NF4 as diffusers' ``BitsAndBytesConfig(load_in_4bit=True,
  bnb_4bit_quant_type="nf4")`` sets it: Linear weights at 4 bits plus one fp32 absmax per block of 64
  (no double quantization); each call dequantizes the layer to bf16 (``dequantize_4bit``) for the matmul.
- ``gguf-*``: diffusers' ``GGUFQuantizationConfig``: Linear weights of the denoiser in a GGML block format
  (bytes per block from the ``gguf`` package's ``GGML_QUANT_SIZES``); each call dequantizes in PyTorch
  (``diffusers.quantizers.gguf.utils.dequantize_gguf_tensor``), whose kernels are traced, not assumed.

Which components: fp8, int8 and nf4 quantize the text encoders and the denoiser (the diffusers recipes'
``PipelineQuantizationConfig`` over both); GGUF the denoiser only (a GGUF file holds the transformer).
The VAE stays at the compute dtype in every quantized format. Layers a library keeps unquantized:
``_keep_in_fp32_modules`` of the model class (T5's ``wo``; diffusers and transformers add these to
``modules_to_not_convert`` in their bitsandbytes and torchao quantizers), kept at the compute dtype.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from sdshape.core.errors import choices_error
from sdshape.models.quantize import layerwise_skip, library_models

NF4_BLOCK = 64
CAST_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
BOTH = ("text_encoder", "denoiser")

# GGML block formats: (elements per block, bytes per block), as the gguf package's GGML_QUANT_SIZES holds them
# (ggml's ggml-common.h): a format's bytes are exact whether or not gguf is installed; a test holds the two equal.
GGUF_BLOCKS = {"q8_0": (32, 34), "q5_k": (256, 176), "q4_k": (256, 144), "q4_0": (32, 18), "q4_1": (32, 20)}


@dataclass(frozen=True)
class WeightFormat:
    name: str
    compute_dtype: torch.dtype
    description: str
    quantized: bool = False
    kinds: tuple[str, ...] = BOTH  # the components a quantized format stores quantized
    library: str | None = None

    @property
    def gguf_block(self) -> tuple[int, int] | None:
        return GGUF_BLOCKS.get(self.name.removeprefix("gguf-")) if self.name.startswith("gguf-") else None


FORMATS = {
    f.name: f
    for f in (
        WeightFormat("fp32", torch.float32, "fp32 weights and compute"),
        WeightFormat("fp16", torch.float16, "fp16 weights and compute"),
        WeightFormat("bf16", torch.bfloat16, "bf16 weights and compute"),
        WeightFormat("fp8", torch.bfloat16, "fp8 e4m3 storage, bf16 compute (diffusers layerwise casting)", True,
                     library="diffusers"),
        WeightFormat("int8", torch.bfloat16, "int8 weight-only, bf16 compute (torchao)", True, library="torchao"),
        WeightFormat("nf4", torch.bfloat16, "NF4 4-bit, bf16 compute (bitsandbytes)", True, library="bitsandbytes"),
        *(
            WeightFormat(f"gguf-{block}", torch.bfloat16, f"GGUF {block.upper()} denoiser, bf16 compute (diffusers)",
                         True, ("denoiser",), "gguf")
            for block in GGUF_BLOCKS
        ),
    )
}  # fmt: skip
# The formats `sdshape fit` searches for the fastest fit (Q4_1 is modelled for validation against a published
# figure; the four GGUF formats users of 8 and 12 GB cards run are Q8_0, Q5_K, Q4_K and Q4_0).
SEARCHED = ("fp16", "bf16", "fp8", "int8", "nf4", "gguf-q8_0", "gguf-q5_k", "gguf-q4_k", "gguf-q4_0")
BF16_ARCHITECTURES = ("ampere", "ada", "hopper", "blackwell")


def weight_format(name: str) -> WeightFormat:
    if name not in FORMATS:
        raise choices_error("precision", name, list(FORMATS))
    return FORMATS[name]


@dataclass(frozen=True)
class StoredWeights:
    """A component's resident bytes in one format; the transient a layer's dequantization adds to a call; and
    the ids of the layers stored quantized (each pays its format's cost per call)."""

    bytes: int
    transient_bytes: int
    quantized_layers: frozenset[int] = frozenset()
    unquantized_bytes: int = 0  # layers a library keeps out of the format (``_keep_in_fp32_modules``)


def _tensor_bytes(tensors: list[torch.Tensor], width: float) -> int:
    return int(sum(t.numel() for t in tensors) * width)


def _walk(module: nn.Module, skip: callable, wanted: tuple[type, ...]) -> set[int]:  # type: ignore[valid-type]
    """The layers of ``wanted`` types in each library model, a subtree whose name ``skip`` matches left out."""
    found: set[int] = set()

    def walk(layer: nn.Module, name: str, patterns: tuple[str, ...]) -> None:
        if name and any(re.search(pattern, name) for pattern in patterns):
            return
        if isinstance(layer, wanted):
            found.add(id(layer))
            return
        for child_name, child in layer.named_children():
            walk(child, f"{name}.{child_name}" if name else child_name, patterns)

    for model in library_models(module):
        walk(model, "", skip(model))
    return found


def _layerwise_cast(module: nn.Module) -> set[int]:
    """The layers diffusers' layerwise casting stores in fp8, found as it walks each library model: a
    module whose name (relative to that model) matches a skip pattern is skipped with its subtree."""
    return _walk(module, layerwise_skip, CAST_LAYERS)


def _quantized_linears(module: nn.Module, fmt: WeightFormat) -> set[int]:
    """The Linear layers a bitsandbytes, torchao or GGUF load quantizes, found as the runs find them
    (:func:`sdshape.models.quantize.quantized_linears`: the class's ``_keep_in_fp32_modules``, a GGUF
    checkpoint's unquantized layers, GGUF rows that are not whole blocks), so both count the same bytes."""
    from sdshape.models.quantize import quantized_linears

    return {id(layer) for _, _, layer in quantized_linears(module, fmt.name)}


def gguf_block_of(fmt: WeightFormat, columns: int) -> tuple[int, int] | None:
    """(elements, bytes) of the GGML block a row of ``columns`` is stored in; None: not whole blocks, so the
    row stays unquantized (city96's converter, whose files diffusers' docs load, writes such tensors in F16)."""
    block = GGUF_BLOCKS[fmt.name.removeprefix("gguf-")]
    return block if columns % block[0] == 0 else None


def _quantized_bytes(weight: torch.Tensor, fmt: WeightFormat) -> int:
    if fmt.name == "int8":
        return weight.numel() + weight.shape[0] * 5  # int8 data; fp32 scale and int8 zero point a row
    if fmt.name == "nf4":
        return weight.numel() // 2 + -(-weight.numel() // NF4_BLOCK) * 4
    elements, nbytes = gguf_block_of(fmt, weight.shape[-1])  # type: ignore[misc]
    return weight.numel() // elements * nbytes


def stored_weights(module: nn.Module, fmt: WeightFormat, quantize: bool = True) -> StoredWeights:
    """Bytes a component holds on the GPU in ``fmt`` (parameters and buffers: SD3's position table is
    in a checkpoint and in VRAM). ``quantize=False`` keeps it at the compute dtype (the VAE)."""
    compute = torch.empty((), dtype=fmt.compute_dtype).element_size()
    tensors = [*module.parameters(), *(b for b in module.buffers() if b.is_floating_point())]
    if not fmt.quantized or not quantize:
        return StoredWeights(_tensor_bytes(tensors, compute), 0)
    total, largest, handled = 0, 0, set()
    cast = _layerwise_cast(module) if fmt.name == "fp8" else set()
    quantized = set() if fmt.name == "fp8" else _quantized_linears(module, fmt)
    for _, layer in module.named_modules():
        own = list(layer.parameters(recurse=False))
        if id(layer) in cast:
            total += _tensor_bytes(own, 1)
        elif id(layer) in quantized:
            weight = layer.weight  # type: ignore[union-attr]
            total += _quantized_bytes(weight, fmt) + _tensor_bytes([p for p in own if p is not weight], compute)
        else:
            continue
        handled.update(id(p) for p in own)
        largest = max(largest, _tensor_bytes(own, compute))
    total += _tensor_bytes([t for t in tensors if id(t) not in handled], compute)
    kept = sum(
        _tensor_bytes(list(layer.parameters(recurse=False)), compute)
        for layer in module.modules()
        if isinstance(layer, nn.Linear) and id(layer) not in quantized and id(layer) not in cast
    )
    transient = 0 if fmt.name == "int8" else largest * _transient_per_bf16_byte(fmt)
    return StoredWeights(total, int(transient), frozenset(cast | quantized), kept)


def _transient_per_bf16_byte(fmt: WeightFormat) -> float:
    """The largest layer's dequantization transient, per byte of its bf16 copy: one bf16 copy for fp8 and NF4;
    for GGUF, the peak of the traced PyTorch dequantization over the bf16 copy."""
    if fmt.gguf_block is None:
        return 1.0
    from sdshape.feasibility.dequant import gguf_dequant_cost

    return gguf_dequant_cost(fmt.name).peak_bytes_per_param / 2
