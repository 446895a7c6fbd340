"""Pack float weights into ggml's Q4_K and Q5_K blocks, which the ``gguf`` package can read but not write.

Why here: gguf-py (0.19) quantizes Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 in numpy and raises NotImplementedError
for the K-quants; llama.cpp's quantizer is C. sdshape's GGUF runs need real K-quant blocks so that
diffusers' own dequantization (``dequantize_blocks_Q4_K``/``_Q5_K``) runs on them. This packer writes the
ggml layout exactly (a test reads every block back with gguf's own ``dequantize``) with the plain min-max
choice of each sub-block's scale and minimum, not llama.cpp's iterative search: its rounding error is an
upper bound on what a llama.cpp file of the same weights would carry.

A block is 256 weights in 8 sub-blocks of 32: fp16 ``d`` and ``dmin``, 12 bytes of 6-bit sub-block scales
and minimums, then (Q5_K) 32 bytes of fifth bits and 128 bytes of 4-bit values (two sub-blocks a nibble
pair). A weight is ``d * scale_j * q - dmin * min_j``.
"""

from __future__ import annotations

import numpy as np

QK_K = 256
SUB = 32


def _pack_scales(scales: np.ndarray, mins: np.ndarray) -> np.ndarray:
    """12 bytes a block from 8 six-bit scales and 8 six-bit minimums (the inverse of gguf's get_scale_min)."""
    sc, mn = scales.astype(np.uint8), mins.astype(np.uint8)
    low = sc[:, :4] | ((sc[:, 4:] >> 4) << 6)
    mid = mn[:, :4] | ((mn[:, 4:] >> 4) << 6)
    high = (sc[:, 4:] & 0x0F) | ((mn[:, 4:] & 0x0F) << 4)
    return np.concatenate([low, mid, high], axis=1)


def quantize_k(weights: np.ndarray, bits: int) -> np.ndarray:
    """``weights`` (rows x a multiple of 256, float32) as Q4_K (``bits=4``) or Q5_K (``bits=5``) blocks: uint8,
    one row of blocks per row of weights, as a GGUF tensor stores them."""
    if bits not in (4, 5):
        raise ValueError(f"K-quants here are 4 or 5 bits, not {bits}")
    rows, columns = weights.shape
    if columns % QK_K:
        raise ValueError(f"a K-quant row is whole blocks of {QK_K}; this one has {columns} values")
    x = weights.astype(np.float32).reshape(-1, QK_K // SUB, SUB)  # blocks x sub-blocks x values
    levels = (1 << bits) - 1
    low = np.minimum(x.min(axis=2), 0.0)  # ggml keeps the minimum at or below zero
    high = x.max(axis=2)
    sub_scale = (high - low) / levels
    sub_min = -low
    d = sub_scale.max(axis=1) / 63
    dmin = sub_min.max(axis=1) / 63
    d16, dmin16 = d.astype(np.float16), dmin.astype(np.float16)
    d, dmin = d16.astype(np.float32), dmin16.astype(np.float32)  # quantize against what is stored
    with np.errstate(divide="ignore", invalid="ignore"):
        scales = np.clip(np.nan_to_num(np.rint(sub_scale / d[:, None])), 0, 63)
        mins = np.clip(np.nan_to_num(np.rint(sub_min / dmin[:, None])), 0, 63)
        step = (d[:, None] * scales)[:, :, None]
        offset = (dmin[:, None] * mins)[:, :, None]
        q = np.clip(np.nan_to_num(np.rint((x + offset) / step)), 0, levels).astype(np.uint8)
    blocks = x.shape[0]
    pairs = q.reshape(blocks, 4, 2, SUB)  # chunk j holds sub-blocks 2j (low nibble) and 2j+1 (high nibble)
    qs = ((pairs[:, :, 0] & 0x0F) | ((pairs[:, :, 1] & 0x0F) << 4)).reshape(blocks, QK_K // 2)
    parts = [
        d16.view(np.uint8).reshape(blocks, 2),
        dmin16.view(np.uint8).reshape(blocks, 2),
        _pack_scales(scales, mins),
    ]
    if bits == 5:
        fifth = (q >> 4) & 1  # blocks x 8 sub-blocks x 32: bit j of qh[l] is sub-block j's value l
        qh = (fifth << np.arange(8, dtype=np.uint8)[None, :, None]).sum(axis=1).astype(np.uint8)
        parts.append(qh)
    parts.append(qs)
    return np.concatenate(parts, axis=1).reshape(rows, -1)
