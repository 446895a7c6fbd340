"""Shares and the pipeline residual, computed over synthetic benchmark rows."""

from __future__ import annotations

import pytest

from sdshape.result.document import stats_dict
from sdshape.result.shares import assemble_entries


def _row(stage: str, rounds: list[float] | None, energy: float | None = None, backend: str = "eager") -> dict:
    info = {
        "stage": stage,
        "shape": "tiny",
        "backend": backend,
        "precision": "fp32",
        "batch": 1,
        "resolution": 64,
        "steps": 2,
        "energy_j": energy,
        "timer": "perf_counter",
        "warmup_rounds": 1,
        "rounds": len(rounds or []),
    }
    return {"extra_info": info, "stats": stats_dict(rounds) if rounds else None}


def test_time_and_energy_shares_and_residual():
    rows = [
        _row("text_encoder", [0.1, 0.1, 0.1], 1.0),
        _row("denoise_loop", [0.6, 0.7, 0.8], 6.0),
        _row("vae_decode", [0.2, 0.2, 0.2], 3.0),
        _row("pipeline", [1.05, 1.1, 1.2], 10.5),
    ]
    assemble_entries(rows)
    info = {r["extra_info"]["stage"]: r["extra_info"] for r in rows}
    assert info["denoise_loop"]["time_share"] == pytest.approx(0.7 / 1.0)
    assert info["vae_decode"]["energy_share"] == pytest.approx(0.3)
    assert info["pipeline"]["time_share"] is None
    assert info["pipeline"]["residual"]["sum_of_stages_s"] == pytest.approx(1.0)
    assert info["pipeline"]["residual"]["residual_s"] == pytest.approx(0.1)


def test_a_failed_stage_leaves_shares_undefined_not_wrong():
    rows = [_row("text_encoder", [0.1]), _row("denoise_loop", None), _row("vae_decode", [0.2]), _row("pipeline", None)]
    assemble_entries(rows)
    assert all(r["extra_info"]["time_share"] is None for r in rows)
    assert "residual" not in rows[3]["extra_info"]
    assert rows[1]["stats"] is None


def test_runs_of_different_backends_are_shared_separately():
    rows = [_row(s, [1.0]) for s in ("text_encoder", "denoise_loop", "vae_decode")]
    rows += [_row(s, [2.0], backend="other") for s in ("text_encoder", "denoise_loop", "vae_decode")]
    assemble_entries(rows)
    assert all(r["extra_info"]["time_share"] == pytest.approx(1 / 3) for r in rows)


def test_stats_keep_raw_rounds():
    stats = stats_dict([3.0, 1.0, 2.0])
    assert stats["data"] == [3.0, 1.0, 2.0] and stats["median"] == 2.0 and stats["rounds"] == 3
