"""What each call of a quantized Linear costs on top of the bf16 matmul: memory traffic per weight element and
per output element, and extra kernel launches, per weight format, from the libraries' own code.

NF4, int8 and fp8 are read off the libraries' forward paths (cited per format); GGUF's dequantization runs
in PyTorch, so its kernels are traced on the meta device from the installed diffusers, once per version.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from dataclasses import dataclass
from functools import cache

import torch

from sdshape.core.errors import UsageError
from sdshape.feasibility.formats import NF4_BLOCK, WeightFormat


@dataclass(frozen=True)
class CallCost:
    """What one call of a quantized Linear costs on top of the bf16 matmul the trace already holds:
    memory traffic per weight element and per output element, and extra kernel launches."""

    bytes_per_param: float
    bytes_per_output: float
    launches: int
    source: str
    peak_bytes_per_param: float = 2.0


CALL_COSTS = {
    "fp8": CallCost(
        6.0, 0.0, 4,
        "diffusers hooks/layerwise_casting.py: pre_forward casts weight and bias fp8 -> bf16 (read 1, write 2 "
        "bytes an element), post_forward casts them back (read 2, write 1)",
    ),
    "int8": CallCost(
        3.0, 4.0, 2,
        "torchao 0.18 Int8Tensor weight-only linear: w_int8.t().to(bf16) (read 1, write 2), torch.mm, then "
        "y = m * scale over the output (read 2, write 2)",
    ),
    "nf4": CallCost(
        2.0 + 0.5 + 4 / NF4_BLOCK, 0.0, 1,
        "bitsandbytes MatMul4Bit: dequantize_4bit reads the 4-bit data and fp32 absmax per 64, writes bf16",
    ),
}  # fmt: skip


@cache
def gguf_dequant_cost(name: str) -> CallCost:
    """The PyTorch kernels diffusers' GGUF dequantization launches for one weight, per weight element: traced
    on the meta device from the installed diffusers' own code (``dequantize_gguf_tensor`` then ``.to(bf16)``,
    as ``GGUFLinear.forward_native`` runs), once per diffusers version (kept beside the trace cache: importing
    diffusers' quantizers takes seconds that ``fit`` should not pay on every answer)."""
    from sdshape.backends.cache import default_root
    from sdshape.result.output import write_atomic

    path = default_root() / "static" / f"gguf-{name}-diffusers-{_version('diffusers')}-gguf-{_version('gguf')}.json"
    try:
        return CallCost(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        pass
    cost = _traced_gguf_cost(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(dataclasses.asdict(cost)))
    except OSError:
        pass  # a read-only cache still gets its answer
    return cost


def _traced_gguf_cost(name: str) -> CallCost:
    from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_gguf_tensor
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    from sdshape.feasibility.trace import trace_function

    quant = GGMLQuantizationType[name.removeprefix("gguf-").upper()]
    elements, nbytes = GGML_QUANT_SIZES[quant]
    rows, columns = 256, 4096  # the cost is per element: any whole number of blocks a row
    data = torch.empty((rows, columns // elements * nbytes), dtype=torch.uint8, device="meta")
    weight = GGUFParameter(data, quant_type=quant)
    trace = trace_function(lambda: dequantize_gguf_tensor(weight).to(torch.bfloat16))
    count = rows * columns
    return CallCost(
        trace.bytes_moved() / count,
        0.0,
        trace.launches,
        f"traced: diffusers {_version('diffusers')} dequantize_gguf_tensor + .to(bf16), "
        f"{trace.launches} kernels ({', '.join(op.name for op in trace.ops)})",
        trace.activation_peak_bytes / count,
    )


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def call_cost(fmt: WeightFormat) -> CallCost | None:
    """The per-call cost of a format's quantized layers (None: plain weights, nothing on top)."""
    if not fmt.quantized:
        return None
    if fmt.gguf_block is not None:
        gguf_missing(fmt, raise_error=True)
        return gguf_dequant_cost(fmt.name)
    return CALL_COSTS[fmt.name]


def gguf_missing(fmt: WeightFormat, raise_error: bool = False) -> str | None:
    """Why a GGUF format cannot be modelled here (its dequantization is traced from diffusers' code, which
    needs the ``gguf`` package); None when it can."""
    if fmt.gguf_block is None:
        return None
    missing = [name for name in ("gguf", "diffusers") if importlib.util.find_spec(name) is None]
    if missing:
        why = f"--precision {fmt.name} needs {' and '.join(missing)}: pip install {' '.join(missing)}"
        if raise_error:
            raise UsageError(why)
        return why
    return None
