"""One stage call traced on the meta device: every kernel it would launch, its FLOPs and bytes, and the
high-water mark of live tensors, with no GPU and no memory.

Why a dispatch-level trace: the activation peak depends on when each tensor is freed, which only the
real call order shows; the time model needs each op's FLOPs and bytes apart, because a GEMM is bound by
the tensor rate and a group norm by memory bandwidth. Both come from one pass.

Memory is counted as ``torch.cuda.max_memory_allocated`` counts it: each storage rounded up to the
caching allocator's 512-byte blocks (the rule ``torch.distributed._tools.mem_tracker`` applies), freed
when its last reference dies. Attention is traced as the fused kernel CUDA runs (flash attention for
fp16/bf16, memory-efficient attention for fp32): on the meta device PyTorch would otherwise pick the
math path and hold the full score matrix, which no GPU run does.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

ALLOCATOR_BLOCK = 512  # c10/cuda/CUDACachingAllocator.cpp: kMinBlockSize

GEMM_OPS = {"mm", "addmm", "bmm", "baddbmm", "matmul", "linear"}
ATTENTION_OPS = {
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention",
    "_flash_attention_forward",
    "_efficient_attention_forward",
}


def op_class(name: str) -> str:
    """The roofline class of an op: the tensor-core classes are bound by FLOPs, ``memory`` by bytes."""
    if name in ATTENTION_OPS:
        return "attention"
    if "convolution" in name or name.startswith("conv"):
        return "convolution"
    if name in GEMM_OPS:
        return "gemm"
    return "memory"


def rounded(nbytes: int) -> int:
    return -(-nbytes // ALLOCATOR_BLOCK) * ALLOCATOR_BLOCK if nbytes else 0


@dataclass
class OpRecord:
    """One kernel: its op class, FLOPs and the bytes it reads and writes."""

    name: str
    kind: str
    flops: int
    bytes_moved: int
    tiles: int = 0  # output tiles of 128x128 (per 128 query rows, for attention): the work units SMs share
    padding: float = 1.0  # useful fraction of the work a kernel does (attention head dims run padded)


@dataclass
class Trace:
    """What one call would do on a GPU, from the meta device."""

    ops: list[OpRecord] = field(default_factory=list)
    activation_peak_bytes: int = 0

    @property
    def launches(self) -> int:
        return len(self.ops)

    def flops(self, kind: str | None = None) -> int:
        return sum(op.flops for op in self.ops if kind is None or op.kind == kind)

    def bytes_moved(self, kind: str | None = None) -> int:
        return sum(op.bytes_moved for op in self.ops if kind is None or op.kind == kind)


TILE = 128
FLASH_HEAD_DIM_STEP = 32  # FlashAttention-2 compiles head dims 32, 64, 96, ... 256: a 40-wide head runs as 64


def _tiles(m: int, n: int, batch: int = 1) -> int:
    return batch * -(-m // TILE) * -(-n // TILE)


def _work_units(name: str, kind: str, args: tuple, out: Any) -> tuple[int, float]:
    """Output tiles the kernel splits its work into, and the useful fraction of what it computes.

    Why: a GPU runs tiles in waves of one per SM, so a GEMM of 40 tiles on 128 SMs leaves two thirds of
    the card idle; SD 1.5 at 512 px has many such layers and SDXL at 1024 px has few. This is what makes
    a per-op roofline tell the two apart."""
    if kind == "gemm":
        if name in ("addmm", "baddbmm"):
            args = args[1:]
        a, b = args[0], args[1]
        if name in ("bmm", "baddbmm"):
            return _tiles(a.shape[1], b.shape[2], a.shape[0]), 1.0
        return _tiles(a.shape[-2] if a.dim() > 1 else 1, b.shape[-1]), 1.0
    if kind == "convolution":
        result = out[0] if isinstance(out, (tuple, list)) else out
        n, c, *spatial = result.shape
        return _tiles(n * math.prod(spatial), c), 1.0
    if kind == "attention":
        query = args[0]
        batch, heads, length, head_dim = query.shape
        padded = -(-head_dim // FLASH_HEAD_DIM_STEP) * FLASH_HEAD_DIM_STEP
        return batch * heads * -(-length // TILE), head_dim / padded
    return 0, 1.0


def _is_view(func: Any) -> bool:
    """An op whose output aliases its input without writing it launches no kernel (view, permute, t...)."""
    returns = func._schema.returns
    return bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in returns)


def _tensor_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


SDPA_ARGUMENTS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


class _FusedAttention(TorchFunctionMode):
    """Routes ``F.scaled_dot_product_attention`` to the fused kernel CUDA would pick for the dtype."""

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        call = dict(zip(SDPA_ARGUMENTS, args, strict=False)) | kwargs
        if call.get("is_causal") or call.get("enable_gqa") or call.get("dropout_p"):
            return func(*args, **kwargs)  # not what these pipelines call; traced as PyTorch would run it
        query, key, value = call["query"], call["key"], call["value"]
        mask, scale = call.get("attn_mask"), call.get("scale")
        if query.dim() != 4:
            return func(*args, **kwargs)
        if query.dtype in (torch.float16, torch.bfloat16) and mask is None:
            return torch.ops.aten._scaled_dot_product_flash_attention(query, key, value, scale=scale)[0]
        if mask is not None and mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, dtype=query.dtype, device=query.device)
        if mask is not None:
            mask = mask.expand(query.shape[0], query.shape[1], query.shape[2], key.shape[2])
        return torch.ops.aten._scaled_dot_product_efficient_attention(query, key, value, mask, False, scale=scale)[0]


class _Tracer(TorchDispatchMode):
    def __init__(self, trace: Trace, conv_workspace: float) -> None:
        super().__init__()
        self.trace = trace
        self.conv_workspace = conv_workspace
        self.live = 0
        self.seen: weakref.WeakSet[Any] = weakref.WeakSet()

    def _release(self, nbytes: int) -> None:
        self.live -= nbytes

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        if storage in self.seen:
            return
        nbytes = rounded(storage.nbytes())
        self.seen.add(storage)
        self.live += nbytes
        weakref.finalize(storage, self._release, nbytes)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if _is_view(func):
            return out
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        packet = func._overloadpacket
        flops = int(flop_registry[packet](*args, **kwargs, out_val=out)) if packet in flop_registry else 0
        name = packet.__name__
        written = sum(_tensor_bytes(t) for t in outputs)
        moved = sum(_tensor_bytes(t) for t in inputs) + written
        kind = op_class(name)
        tiles, padding = _work_units(name, kind, args, out)
        self.trace.ops.append(OpRecord(name, kind, flops, moved, tiles, padding))
        for tensor in outputs:
            self._track(tensor)
        # cuDNN's convolution workspace goes through the caching allocator and is freed after the call.
        transient = rounded(int(self.conv_workspace * written)) if kind == "convolution" else 0
        self.trace.activation_peak_bytes = max(self.trace.activation_peak_bytes, self.live + transient)
        return out


def trace_call(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], conv_workspace: float = 0.0) -> Trace:
    """Trace ``module(*inputs)`` on the meta device; the output is dropped after the call, as a stage does."""
    trace = Trace()
    with torch.no_grad(), _FusedAttention(), _Tracer(trace, conv_workspace):
        module(*inputs)
    return trace


def trace_function(function: Callable[[], Any]) -> Trace:
    """Trace any call on meta tensors (a library's dequantization, say): its kernels and live-tensor peak."""
    trace = Trace()
    with torch.no_grad(), _Tracer(trace, 0.0):
        function()
    return trace
