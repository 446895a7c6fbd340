"""Weight storage formats in runs, as the libraries consumer users run implement them.

- ``fp8``: diffusers' layerwise casting (``apply_layerwise_casting``, what ``enable_layerwise_casting``
  calls): Linear and Conv weights stored in float8 e4m3, each layer upcast to bf16 for its call; norms and
  embeddings skipped by diffusers' default pattern.
- ``int8``: torchao ``quantize_(module, Int8WeightOnlyConfig())``: Linear weights in int8 with a per-row scale.
- ``nf4``: bitsandbytes ``Linear4bit(quant_type="nf4")`` in place of every Linear, bf16 compute: what
  diffusers' ``BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")`` builds.
- ``gguf-q8_0``, ``gguf-q5_k``, ``gguf-q4_k``, ``gguf-q4_0``: diffusers' ``GGUFLinear`` with a ``GGUFParameter``
  in place of every Linear of the denoiser whose rows are whole blocks (what ``GGUFQuantizationConfig``
  loading builds from a GGUF file); the blocks are packed by gguf's quantizer (Q8_0, Q4_0 and the 32-block
  fallbacks) or sdshape's K-quant packer, and dequantized in PyTorch on every call.

The text encoders and the denoiser are quantized; the VAE stays in bf16, as the diffusers recipes leave
it. Quantized tensors report their logical size to PyTorch (torchao) or hide their scales outside the
parameter (bitsandbytes), so :func:`stored_nbytes` reads what each format really holds.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sdshape.core.errors import UsageError

STORAGE_FORMATS = ("fp8", "int8", "nf4", "gguf-q8_0", "gguf-q5_k", "gguf-q4_k", "gguf-q4_0")
# diffusers' DEFAULT_SKIP_MODULES_PATTERN, matched (re.search) on names relative to the library model
LAYERWISE_SKIP = ("pos_embed", "patch_embed", "norm", "^proj_in$", "^proj_out$")
LIBRARY = {"fp8": "diffusers", "int8": "torchao", "nf4": "bitsandbytes", **{f: "gguf" for f in STORAGE_FORMATS[3:]}}
# llama.cpp's quantizer keeps a K-quant's bits where a row is not whole 256-blocks by falling back to a 32-block
# type (llama_tensor_get_type: Q4_K -> Q5_0, Q5_K -> Q5_1); a row that is not whole 32-blocks stays unquantized.
GGUF_FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1"}


def check_available(storage: str) -> None:
    """A one-line usage error when the format's library is not installed."""
    library = LIBRARY[storage]
    try:
        __import__(library)
    except ImportError:
        raise UsageError(f"--precision {storage} needs {library}: pip install {library}") from None


def quantize(module: nn.Module, storage: str) -> nn.Module:
    """Store ``module``'s weights in ``storage``, in place; it computes in bf16 afterwards."""
    if storage == "fp8":
        from diffusers.hooks import apply_layerwise_casting

        # On each library model, not on sdshape's stage wrapper: the skip patterns are anchored to the
        # library model's own names (FLUX's top-level ``proj_out`` is ``transformer.proj_out`` in the wrapper).
        for library_model in library_models(module):
            patterns = layerwise_skip(library_model)
            apply_layerwise_casting(library_model, torch.float8_e4m3fn, torch.bfloat16, skip_modules_pattern=patterns)
    elif storage == "int8":
        from torchao.quantization import Int8WeightOnlyConfig, quantize_

        quantize_(module, Int8WeightOnlyConfig())
    elif storage == "nf4":
        _to_nf4(module)
    elif storage.startswith("gguf-"):
        _to_gguf(module, storage.removeprefix("gguf-").upper())
    else:
        raise ValueError(storage)
    return module


def layerwise_skip(model: nn.Module) -> tuple[str, ...]:
    """The layers diffusers' ``enable_layerwise_casting`` leaves at the compute dtype for ``model``: its
    default patterns, the model class's ``_keep_in_fp32_modules`` (T5's ``wo``) and its
    ``_skip_layerwise_casting_patterns`` (PixArt's ``adaln_single``)."""
    # Read defensively: transformers 5 made ``_keep_in_fp32_modules`` a set (it was a list), and either
    # attribute may be None, a tuple or a single string.
    extra = [*_names(getattr(model, "_keep_in_fp32_modules", None)),
             *_names(getattr(model, "_skip_layerwise_casting_patterns", None))]  # fmt: skip
    return tuple(dict.fromkeys([*LAYERWISE_SKIP, *extra]))


def _names(value: object) -> list[str]:
    """A library attribute that lists module names, as a sorted list whatever container it came in."""
    if not value:
        return []
    if isinstance(value, str):
        return [value]
    return sorted(str(v) for v in value)  # type: ignore[attr-defined]


def library_models(module: nn.Module) -> list[nn.Module]:
    """The models a stage module wraps (its children; a list of encoders is looked into)."""
    found: list[nn.Module] = []
    for child in module.children():
        found += library_models(child) if isinstance(child, nn.ModuleList) else [child]
    return found


def store(module: nn.Module, storage: str | None, kind: str) -> nn.Module:
    """A component as a run in ``storage`` holds it: quantized, except the VAE (and nothing without a format);
    a GGUF format quantizes the denoiser only (a GGUF file holds the transformer; the encoders load plain)."""
    if not storage or kind == "vae" or (storage.startswith("gguf-") and kind != "denoiser"):
        return module
    return quantize(module, storage)


def gguf_type(quant: str, columns: int) -> str | None:
    """The GGML type a row of ``columns`` weights is stored in for format ``quant`` (None: left unquantized)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    for name in (quant, GGUF_FALLBACK.get(quant)):
        if name is not None and columns % GGML_QUANT_SIZES[GGMLQuantizationType[name]][0] == 0:
            return name
    return None


def gguf_blocks(weight: torch.Tensor, quant: str) -> torch.Tensor:
    """A weight as GGML blocks (uint8, rows x bytes), packed by gguf's own quantizer, or by
    :mod:`sdshape.models.kquants` for the K-quants gguf cannot write."""
    import gguf

    from sdshape.models.kquants import quantize_k

    data = weight.detach().to(device="cpu", dtype=torch.float32).numpy()
    if quant in ("Q4_K", "Q5_K"):
        return torch.from_numpy(quantize_k(data, int(quant[1])))
    return torch.from_numpy(gguf.quants.quantize(data, gguf.GGMLQuantizationType[quant]))


def _to_gguf(module: nn.Module, quant: str) -> None:
    """Every Linear whose rows are whole blocks becomes diffusers' ``GGUFLinear`` holding a ``GGUFParameter``,
    as ``GGUFQuantizationConfig`` loading builds it; it dequantizes in PyTorch on every call."""
    from diffusers.quantizers.gguf.utils import GGUFLinear, GGUFParameter
    from gguf import GGMLQuantizationType

    for name, child in list(module.named_children()):
        if not isinstance(child, nn.Linear):
            _to_gguf(child, quant)
            continue
        kind = gguf_type(quant, child.in_features)
        if kind is None:
            continue
        device = child.weight.device
        layer = GGUFLinear(child.in_features, child.out_features, bias=child.bias is not None,
                           compute_dtype=torch.bfloat16, device="meta")  # fmt: skip
        blocks = gguf_blocks(child.weight, kind).to(device)
        layer.weight = GGUFParameter(blocks, quant_type=GGMLQuantizationType[kind])
        if child.bias is not None:
            layer.bias = nn.Parameter(child.bias.data.to(torch.bfloat16), requires_grad=False)
        setattr(module, name, layer)


def _to_nf4(module: nn.Module) -> None:
    import bitsandbytes as bnb

    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            device = child.weight.device
            layer = bnb.nn.Linear4bit(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                compute_dtype=torch.bfloat16,
                quant_type="nf4",
                compress_statistics=False,
                device="meta",
            )  # fmt: skip  (no double quantization: diffusers' bnb_4bit_use_double_quant defaults to False)
            layer.weight = bnb.nn.Params4bit(
                child.weight.data.cpu(), requires_grad=False, quant_type="nf4", compress_statistics=False
            )
            if child.bias is not None:
                layer.bias = nn.Parameter(child.bias.data, requires_grad=False)
            setattr(module, name, layer.to(device))  # bitsandbytes quantizes as the weight moves to the device
        else:
            _to_nf4(child)


def _inner_tensors(tensor: torch.Tensor) -> list[torch.Tensor]:
    """The plain tensors a tensor subclass (torchao's) is made of; a plain tensor is its own."""
    flatten = getattr(type(tensor), "__tensor_flatten__", None)
    if flatten is None or type(tensor) in (torch.Tensor, nn.Parameter):
        return [tensor]
    names, _ = tensor.__tensor_flatten__()
    return [inner for name in names for inner in _inner_tensors(getattr(tensor, name))]


def stored_nbytes(tensor: torch.Tensor) -> int:
    """Bytes a weight really holds: a torchao tensor's int8 data and scales, a bitsandbytes weight's packed
    4-bit data and its absmax and code tables."""
    state = getattr(tensor, "quant_state", None)
    if state is not None:
        nested = getattr(state, "state2", None)  # double quantization: the absmax quantized in turn
        parts = (state, nested) if nested is not None else (state,)
        extra = [t for s in parts for t in (getattr(s, "absmax", None), getattr(s, "code", None)) if t is not None]
        return tensor.numel() * tensor.element_size() + sum(t.numel() * t.element_size() for t in extra)
    return sum(t.numel() * t.element_size() for t in _inner_tensors(tensor))


def logical_numel(tensor: torch.Tensor) -> int:
    """The parameter count a weight stands for (bitsandbytes packs two 4-bit values a byte; a GGUF weight
    holds blocks of bytes for ``quant_shape`` values)."""
    state = getattr(tensor, "quant_state", None)
    if state is not None:
        return math.prod(state.shape)
    shape = getattr(tensor, "quant_shape", None)
    return math.prod(shape) if shape is not None else tensor.numel()
