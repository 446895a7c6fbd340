"""Weight storage formats in runs, as the libraries consumer users run implement them.

- ``fp8``: diffusers' layerwise casting (``apply_layerwise_casting``, what ``enable_layerwise_casting``
  calls): Linear and Conv weights stored in float8 e4m3, each layer upcast to bf16 for its call; norms and
  embeddings skipped by diffusers' default pattern.
- ``int8``: torchao ``quantize_(module, Int8WeightOnlyConfig())``: Linear weights in int8 with a per-row scale.
- ``nf4``: bitsandbytes ``Linear4bit(quant_type="nf4")`` in place of each Linear, bf16 compute: what
  diffusers' ``BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")`` builds.
- ``gguf-q8_0``, ``gguf-q5_k``, ``gguf-q4_k``, ``gguf-q4_0``: diffusers' ``GGUFLinear`` over a ``GGUFParameter``
  in place of each Linear of the denoiser that a GGUF checkpoint holds quantized (what ``GGUFQuantizationConfig``
  loading builds from the file); blocks packed by gguf's own quantizer (Q8_0, Q4_0) or, for the K-quants gguf
  cannot write, by :mod:`sdshape.models.kquants`; dequantized in PyTorch on every call.

fp8, int8 and NF4 store the text encoders and the denoiser, GGUF the denoiser only; the VAE stays in bf16, as
the diffusers recipes leave it. Layers a library leaves out (a class's ``_keep_in_fp32_modules``, T5's ``wo``)
stay at the compute dtype. Quantized tensors report their logical size to PyTorch (torchao), hide their
scales outside the parameter (bitsandbytes) or hold bytes (GGUF), so :func:`stored_nbytes` reads what each
format really holds.
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn

from sdshape.core.errors import UsageError

STORAGE_FORMATS = ("fp8", "int8", "nf4", "gguf-q8_0", "gguf-q5_k", "gguf-q4_k", "gguf-q4_0")
# diffusers' DEFAULT_SKIP_MODULES_PATTERN, matched (re.search) on names relative to the library model
LAYERWISE_SKIP = ("pos_embed", "patch_embed", "norm", "^proj_in$", "^proj_out$")
LIBRARY = {"fp8": "diffusers", "int8": "torchao", "nf4": "bitsandbytes", **{f: "gguf" for f in STORAGE_FORMATS[3:]}}
# Linear layers a GGUF checkpoint of each denoiser holds unquantized (F32/F16), so diffusers' loader leaves them
# nn.Linear at the compute dtype. The rules are those of city96's ComfyUI-GGUF converter (tools/lcpp.patch,
# the patched llama-quantize behind the GGUF files diffusers' docs load: the embedders and the final layer of
# each architecture), written in diffusers' module names (convert_flux_transformer_checkpoint_to_diffusers:
# img_in -> x_embedder, txt_in -> context_embedder, time_in/vector_in/guidance_in -> time_text_embed.*,
# final_layer -> norm_out.linear and proj_out). Matched (re.search) on names relative to the library model.
# The converter also writes any tensor of at most 1024 values in F32; no Linear of a real denoiser is that small,
# and applying it to sdshape's tiny stand-ins would leave most of their layers unquantized, so it is not applied.
GGUF_KEEP: dict[str, tuple[str, ...]] = {
    "FluxTransformer2DModel": (r"^x_embedder$", r"^context_embedder$", r"^time_text_embed\.", r"^norm_out\.",
                               r"^proj_out$"),
    "SD3Transformer2DModel": (r"^pos_embed\.", r"^context_embedder$", r"^time_text_embed\.", r"^norm_out\.",
                              r"^proj_out$"),
    "UNet2DConditionModel": (r"^time_embedding\.", r"^add_embedding\.", r"^class_embedding\."),
    # PixArt has no GGUF converter of its own; LTX-Video's rule, on the same diffusers names, stands for it.
    "PixArtTransformer2DModel": (r"^adaln_single\.", r"^caption_projection\.", r"^proj_out$"),
}  # fmt: skip


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

        chosen = {id(layer) for _, _, layer in quantized_linears(module, storage)}
        quantize_(module, Int8WeightOnlyConfig(), filter_fn=lambda layer, _: id(layer) in chosen)
    elif storage == "nf4":
        for parent, name, layer in quantized_linears(module, storage):
            setattr(parent, name, _nf4_linear(layer))
    elif storage.startswith("gguf-"):
        for parent, name, layer in quantized_linears(module, storage):
            setattr(parent, name, _gguf_linear(layer, storage.removeprefix("gguf-").upper()))
    else:
        raise ValueError(storage)
    return module


def unquantized_patterns(model: nn.Module, storage: str) -> tuple[str, ...]:
    """Names (``re.search`` on names relative to ``model``) of the layers a load in ``storage`` leaves at the
    compute dtype: the class's ``_keep_in_fp32_modules`` (T5's ``wo``), which transformers' and diffusers'
    bitsandbytes, torchao and GGUF quantizers add to ``modules_to_not_convert``; for GGUF also the layers the
    checkpoint holds unquantized (:data:`GGUF_KEEP`)."""
    kept = _names(getattr(model, "_keep_in_fp32_modules", None))
    if storage.startswith("gguf-"):
        kept += GGUF_KEEP.get(type(model).__name__, ())
    return tuple(dict.fromkeys(kept))


def quantized_linears(module: nn.Module, storage: str) -> list[tuple[nn.Module, str, nn.Linear]]:
    """(parent, name, layer) of each Linear a load in ``storage`` quantizes, walked in each library model: a
    subtree :func:`unquantized_patterns` names is left out; for GGUF, so is a Linear whose rows are not whole
    blocks of the format (:func:`gguf_type`)."""
    quant = storage.removeprefix("gguf-").upper() if storage.startswith("gguf-") else None
    found: list[tuple[nn.Module, str, nn.Linear]] = []

    def visit(parent: nn.Module, name: str, layer: nn.Module, path: str, patterns: tuple[str, ...]) -> None:
        if path and any(re.search(pattern, path) for pattern in patterns):
            return
        if isinstance(layer, nn.Linear):
            if quant is None or gguf_type(quant, layer.in_features) is not None:
                found.append((parent, name, layer))
            return
        for child_name, child in layer.named_children():
            visit(layer, child_name, child, f"{path}.{child_name}" if path else child_name, patterns)

    for parent, name, model in _wrapped(module):
        visit(parent, name, model, "", unquantized_patterns(model, storage))
    return found


def _wrapped(module: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """(parent, name, model) of each library model :func:`library_models` finds in a stage module."""
    found: list[tuple[nn.Module, str, nn.Module]] = []
    for name, child in module.named_children():
        found += _wrapped(child) if isinstance(child, nn.ModuleList) else [(module, name, child)]
    return found


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
    """The GGML type a row of ``columns`` weights is stored in for format ``quant``; None: the row is not whole
    blocks (32 values for Q8_0 and Q4_0, 256 for the K-quants), so the layer stays at the compute dtype.

    llama.cpp's upstream quantizer would fall back to a 32-block type (Q4_K to Q5_0, Q5_K to Q5_1), but the
    converter behind the diffusion GGUF files diffusers loads (city96's patched llama-quantize) writes such a
    tensor in F16, which diffusers loads as a plain Linear in the compute dtype."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    return quant if columns % GGML_QUANT_SIZES[GGMLQuantizationType[quant]][0] == 0 else None


def gguf_blocks(weight: torch.Tensor, quant: str) -> torch.Tensor:
    """A weight as GGML blocks (uint8, rows x bytes), packed from float32 by gguf's own quantizer, or by
    :mod:`sdshape.models.kquants` for the K-quants gguf-py cannot write (it raises NotImplementedError)."""
    import gguf

    from sdshape.models.kquants import quantize_k

    data = weight.detach().to(device="cpu", dtype=torch.float32).numpy()
    if quant in ("Q4_K", "Q5_K"):
        return torch.from_numpy(quantize_k(data, int(quant[1])))
    return torch.from_numpy(gguf.quants.quantize(data, gguf.GGMLQuantizationType[quant]))


def _gguf_linear(layer: nn.Linear, quant: str) -> nn.Module:
    """``layer`` as diffusers' ``_replace_with_gguf_linear`` builds it (a ``GGUFLinear`` made on the meta device,
    bf16 compute), holding its weight as a ``GGUFParameter`` of ``quant`` blocks and its bias in bf16."""
    from accelerate import init_empty_weights
    from diffusers.quantizers.gguf.utils import GGUFLinear, GGUFParameter
    from gguf import GGMLQuantizationType

    device = layer.weight.device
    with init_empty_weights():
        gguf_layer = GGUFLinear(layer.in_features, layer.out_features, layer.bias is not None,
                                compute_dtype=torch.bfloat16)  # fmt: skip
    gguf_layer.source_cls = type(layer)
    blocks = gguf_blocks(layer.weight, quant).to(device)
    gguf_layer.weight = GGUFParameter(blocks, quant_type=GGMLQuantizationType[quant])
    if layer.bias is not None:
        gguf_layer.bias = nn.Parameter(layer.bias.data.to(torch.bfloat16), requires_grad=False)
    return gguf_layer.requires_grad_(False)


def _nf4_linear(layer: nn.Linear) -> nn.Module:
    """``layer`` as diffusers' bitsandbytes NF4 load builds it: ``Linear4bit``, quantized as it reaches its device."""
    import bitsandbytes as bnb

    device = layer.weight.device
    nf4 = bnb.nn.Linear4bit(
        layer.in_features,
        layer.out_features,
        bias=layer.bias is not None,
        compute_dtype=torch.bfloat16,
        quant_type="nf4",
        compress_statistics=False,
        device="meta",
    )  # fmt: skip  (no double quantization: diffusers' bnb_4bit_use_double_quant defaults to False)
    nf4.weight = bnb.nn.Params4bit(
        layer.weight.data.cpu(), requires_grad=False, quant_type="nf4", compress_statistics=False
    )
    if layer.bias is not None:
        nf4.bias = nn.Parameter(layer.bias.data, requires_grad=False)
    return nf4.to(device)  # bitsandbytes quantizes as the weight moves to the device


def _inner_tensors(tensor: torch.Tensor) -> list[torch.Tensor]:
    """The plain tensors a tensor subclass (torchao's) is made of; a plain tensor is its own."""
    flatten = getattr(type(tensor), "__tensor_flatten__", None)
    if flatten is None or type(tensor) in (torch.Tensor, nn.Parameter):
        return [tensor]
    names, _ = tensor.__tensor_flatten__()
    return [inner for name in names for inner in _inner_tensors(getattr(tensor, name))]


def stored_nbytes(tensor: torch.Tensor) -> int:
    """Bytes a weight really holds: a torchao tensor's int8 data and scales, a bitsandbytes weight's packed
    4-bit data and its absmax and code tables, a GGUF weight's blocks (its block bytes read from gguf's
    ``GGML_QUANT_SIZES``, so a format gguf adds is counted as gguf counts it)."""
    quant_type = getattr(tensor, "quant_type", None)
    if quant_type is not None and getattr(tensor, "quant_shape", None) is not None:
        from gguf import GGML_QUANT_SIZES

        elements, nbytes = GGML_QUANT_SIZES[quant_type]
        return logical_numel(tensor) // elements * nbytes
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
