"""Weight storage formats consumer users run, and the bytes each stores per layer, overhead included.

Why per layer: every format below quantizes only some layers (Linear, or Linear and Conv) and keeps the
rest (norms, embeddings, biases of skipped layers) at the compute dtype, so a model's bytes depend on
which layers it has, not only on its parameter count.

- ``fp32``, ``fp16``, ``bf16``: every tensor at that width.
- ``fp8``: diffusers' ``enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn,
  compute_dtype=torch.bfloat16)``. Linear and Conv layers (weight and bias) are stored in 1 byte, except
  those ``enable_layerwise_casting`` keeps (its default patterns, and the model class's own: T5's
  ``wo``, PixArt's ``adaln_single``), matched on names within each library model; each layer is upcast
  to bf16 for its call, so the largest layer's bf16 copy is a
  transient.
- ``int8``: torchao ``Int8WeightOnlyConfig`` (torchao 0.18): Linear weights in int8 with one fp32 scale and
  one int8 zero point per output row (5 bytes a row); the kernel reads int8 directly, no transient.
- ``nf4``: bitsandbytes 4-bit NF4 as diffusers' ``BitsAndBytesConfig(load_in_4bit=True,
  bnb_4bit_quant_type="nf4")`` sets it: Linear weights at 4 bits plus one fp32 absmax per block of 64
  (0.5625 bytes a parameter, no double quantization); dequantized to bf16 for the matmul, so the largest
  layer's bf16 copy is a transient.

The VAE is left at the compute dtype in the quantized formats, as the diffusers recipes leave it.
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


@dataclass(frozen=True)
class WeightFormat:
    name: str
    compute_dtype: torch.dtype
    description: str
    quantized: bool = False


FORMATS = {
    f.name: f
    for f in (
        WeightFormat("fp32", torch.float32, "fp32 weights and compute"),
        WeightFormat("fp16", torch.float16, "fp16 weights and compute"),
        WeightFormat("bf16", torch.bfloat16, "bf16 weights and compute"),
        WeightFormat("fp8", torch.bfloat16, "fp8 e4m3 storage, bf16 compute (diffusers layerwise casting)", True),
        WeightFormat("int8", torch.bfloat16, "int8 weight-only, bf16 compute (torchao)", True),
        WeightFormat("nf4", torch.bfloat16, "NF4 4-bit, bf16 compute (bitsandbytes)", True),
    )
}
BF16_ARCHITECTURES = ("ampere", "ada", "hopper", "blackwell")


def weight_format(name: str) -> WeightFormat:
    if name not in FORMATS:
        raise choices_error("precision", name, list(FORMATS))
    return FORMATS[name]


@dataclass(frozen=True)
class StoredWeights:
    """A component's resident bytes in one format, and the transient a layer's upcast adds to a call."""

    bytes: int
    transient_bytes: int


def _tensor_bytes(tensors: list[torch.Tensor], width: float) -> int:
    return int(sum(t.numel() for t in tensors) * width)


def _layerwise_cast(module: nn.Module) -> set[int]:
    """The layers diffusers' layerwise casting stores in fp8, found as it walks each library model: a
    module whose name (relative to that model) matches a skip pattern is skipped with its subtree."""
    cast: set[int] = set()

    def walk(layer: nn.Module, name: str, patterns: tuple[str, ...]) -> None:
        if name and any(re.search(pattern, name) for pattern in patterns):
            return
        if isinstance(layer, CAST_LAYERS):
            cast.add(id(layer))
            return
        for child_name, child in layer.named_children():
            walk(child, f"{name}.{child_name}" if name else child_name, patterns)

    for model in library_models(module):
        walk(model, "", layerwise_skip(model))
    return cast


def stored_weights(module: nn.Module, fmt: WeightFormat, quantize: bool = True) -> StoredWeights:
    """Bytes a component holds on the GPU in ``fmt`` (parameters and buffers: SD3's position table is
    in a checkpoint and in VRAM). ``quantize=False`` keeps it at the compute dtype (the VAE)."""
    compute = torch.empty((), dtype=fmt.compute_dtype).element_size()
    tensors = [*module.parameters(), *(b for b in module.buffers() if b.is_floating_point())]
    if not fmt.quantized or not quantize:
        return StoredWeights(_tensor_bytes(tensors, compute), 0)
    total, largest, handled = 0, 0, set()
    cast = _layerwise_cast(module) if fmt.name == "fp8" else set()
    for _, layer in module.named_modules():
        own = list(layer.parameters(recurse=False))
        if id(layer) in cast:
            total += _tensor_bytes(own, 1)
        elif fmt.name in ("int8", "nf4") and isinstance(layer, nn.Linear):
            weight = layer.weight
            if fmt.name == "int8":
                total += weight.numel() + weight.shape[0] * 5  # int8 data; fp32 scale and int8 zero point a row
            else:
                total += weight.numel() // 2 + -(-weight.numel() // NF4_BLOCK) * 4
            total += _tensor_bytes([p for p in own if p is not weight], compute)
        else:
            continue
        handled.update(id(p) for p in own)
        largest = max(largest, _tensor_bytes(own, compute))
    total += _tensor_bytes([t for t in tensors if id(t) not in handled], compute)
    transient = 0 if fmt.name == "int8" else largest
    return StoredWeights(total, transient)
