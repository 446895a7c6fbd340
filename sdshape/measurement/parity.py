"""Output parity: every backend's stage output against eager fp32 on the same inputs.

A result over its tolerance, or with any NaN or Inf, is ``invalid``: it stays
in the results with its figures but is never ranked or called fastest. That is
how an fp16 overflow (the SDXL VAE's known case, with real weights) shows up:
as an invalid row, not a fast one.

Tolerances are on the relative L2 error ||out - ref|| / ||ref|| over the whole
stage output, in float64. They are loose enough for the rounding of each
precision compounded through a 50-step loop, and tight enough that a wrong
graph (a dropped op, a mixed-up input) fails by orders of magnitude.
"""

from __future__ import annotations

from typing import Any

import torch

from sdshape.core.vocabulary import PRECISIONS
from sdshape.result.records import Parity

REFERENCE = "eager fp32"


def flatten(output: Any) -> torch.Tensor:
    """One float32 CPU vector from a stage output (a tensor, or a tuple of them)."""
    parts = output if isinstance(output, (tuple, list)) else (output,)
    return torch.cat([p.detach().reshape(-1).float().cpu() for p in parts])


def compare(output: Any, reference: torch.Tensor, precision: str) -> Parity:
    """The stage's output against the reference, as the row's parity record."""
    out = flatten(output).double()
    ref = reference.double()
    if out.shape != ref.shape:
        return Parity(
            reference=REFERENCE,
            ok=False,
            error=f"output has {out.numel()} values, the reference {ref.numel()}",
            tolerance_rel_l2=PRECISIONS[precision].parity_tolerance,
        )
    nan = int(torch.isnan(out).sum())
    inf = int(torch.isinf(out).sum())
    diff = torch.nan_to_num(out - ref, nan=float("inf"))
    norm = float(ref.norm())
    rel = float(diff.norm()) / norm if norm > 0 else float(diff.norm())
    tolerance = PRECISIONS[precision].parity_tolerance
    return Parity(
        reference=REFERENCE,
        rel_l2=rel,
        max_abs=float(diff.abs().max()) if diff.numel() else 0.0,
        nan=nan,
        inf=inf,
        tolerance_rel_l2=tolerance,
        ok=nan == 0 and inf == 0 and rel <= tolerance,
    )


def self_reference() -> Parity:
    """Parity of the eager fp32 run itself: it is the reference."""
    return Parity(reference=REFERENCE, rel_l2=0.0, max_abs=0.0, nan=0, inf=0, ok=True, is_reference=True)


def failure_message(result: Parity) -> str:
    detail = result.error or (
        f"rel L2 {result.rel_l2:.3g} > {result.tolerance_rel_l2:g}, NaN {result.nan}, Inf {result.inf}"
    )
    return f"parity with {REFERENCE} failed: {detail}"
