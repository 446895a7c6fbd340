"""Parity verdicts, including the overflow case that must never pass as a fast result."""

from __future__ import annotations

import torch

from sdshape.core.vocabulary import PRECISIONS
from sdshape.measurement import parity
from sdshape.measurement.measure import Outcome
from sdshape.run.recording import result_of


def test_close_outputs_pass_and_report_their_error():
    reference = torch.linspace(-3, 3, 1000)
    result = parity.compare(reference * (1 + 1e-4), reference, "fp32")
    assert result.ok and 0 < result.rel_l2 < 1e-3 and result.nan == result.inf == 0
    assert result.tolerance_rel_l2 == PRECISIONS["fp32"].parity_tolerance == 1e-3


def test_tolerance_depends_on_precision():
    reference = torch.linspace(-3, 3, 1000)
    noisy = reference * (1 + 0.02)
    assert not parity.compare(noisy, reference, "fp32").ok
    assert parity.compare(noisy, reference, "fp16").ok


def test_fp16_overflow_is_invalid_however_small_the_rest():
    reference = torch.ones(4096)
    overflowed = reference.half().clone()
    overflowed[7] = float("inf")
    overflowed[9] = float("nan")
    result = parity.compare(overflowed, reference, "fp16")
    assert not result.ok and result.inf == 1 and result.nan == 1
    assert "NaN 1, Inf 1" in parity.failure_message(result)


def test_tuple_outputs_and_shape_mismatch():
    hidden, pooled = torch.randn(2, 77, 8), torch.randn(2, 8)
    flat = parity.flatten((hidden, pooled))
    assert flat.numel() == 2 * 77 * 8 + 16
    assert parity.compare((hidden, pooled), flat, "fp32").ok
    assert not parity.compare(hidden, flat, "fp32").ok


def test_session_marks_failed_parity_invalid(tiny_session, monkeypatch):
    from sdshape.run.reference import Reference

    reference = Reference(
        {"vae_decode": torch.zeros(3 * 64 * 64) + 1.0}, tiny_session.stages["denoise_loop"].conditioning
    )
    monkeypatch.setattr(tiny_session, "reference", reference)
    monkeypatch.setattr(tiny_session, "backend", "other")
    monkeypatch.setattr(tiny_session.plan, "backend_specs", {"other": ("other", {})})
    outcome = Outcome(
        "vae_decode", "ok", None, "perf_counter", rounds_s=[0.01], output=torch.full((1, 3, 64, 64), float("inf"))
    )
    result = result_of(tiny_session.plan, tiny_session.record(outcome))
    assert result.status == "invalid" and "parity with eager fp32 failed" in result.message
    assert result.parity.inf == 3 * 64 * 64 and not result.rankable
    assert result.timing.rounds_s == [0.01]  # an invalid row keeps its figures; it is only never ranked
