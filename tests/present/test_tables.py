"""What the tables say, checked on the H100 run's own files (tests/data/gpu-runs/2026-11-22-h100/)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from sdshape.present.backends_table import backends_table
from sdshape.present.tables import clock_line, residual_line
from sdshape.result.model import StageResult
from sdshape.result.records import Throttle
from sdshape.result.shares import residual_check

H100 = Path(__file__).parents[1] / "data" / "gpu-runs" / "2026-11-22-h100"


def _results(name: str) -> list[StageResult]:
    document = json.loads((H100 / name).read_text())
    return [StageResult.from_extra_info(b["extra_info"], b["stats"]) for b in document["benchmarks"]]


def _render(table) -> str:
    console = Console(record=True, width=300)
    console.print(table)
    return console.export_text()


def test_speedup_is_shown_without_parity_and_never_starred():
    """With --no-parity the H100 table printed "-" for every speedup, hiding reduce-overhead's 4.3x."""
    printed = _render(backends_table(_results("sd15-eager+compile+compile-reduce-overhead-fp16-noparity.json")))
    loop = next(line for line in printed.splitlines() if "denoise_loop" in line and "reduce-overhead" in line)
    assert "4.33x" in loop and "not checked" in loop
    assert "★" not in printed  # nothing is the fastest *valid* result when nothing was checked


def test_the_footer_states_the_clock_and_throttling():
    line = clock_line(_results("sd15-eager-fp16.json"))
    assert line == "SM clock under load: median 1980 MHz (range 1980-1980) · not throttled"
    throttled = _results("sd15-eager-fp16.json")[:1]
    throttled[0].conditions.sm_clock_mhz = {"min": 1400, "median": 1500, "max": 1980}
    throttled[0].conditions.throttle = Throttle(reasons=["sw_power_cap"], throttled=True)
    assert f"throttled ({throttled[0].stage} sw_power_cap)" in clock_line(throttled)
    throttled[0].conditions.sm_clock_mhz = None
    assert clock_line(throttled).startswith("SM clock: n/a")


def test_a_residual_beyond_the_spread_is_a_warning_not_a_finding():
    """The H100's eager loop alone (2.43 s) took longer than the whole pipeline (2.29 s)."""
    medians = {"text_encoder": 0.0048, "denoise_loop": 2.43, "vae_decode": 0.0252, "pipeline": 2.29}
    noisy = residual_check(medians, [0.0008, 0.05, 0.0007, 0.04])
    assert not noisy.within_spread and noisy.stages_slower_than_pipeline == ["denoise_loop"]
    line = residual_line(noisy)
    assert line.startswith("[yellow]warning") and "denoise_loop alone took longer" in line and "64.0 ms" in line
    graphs = {"text_encoder": 0.0009, "denoise_loop": 0.3787, "vae_decode": 0.0088, "pipeline": 0.3879}
    steady = residual_check(graphs, [0.00001, 0.0005, 0.0001, 0.0005])
    assert steady.within_spread and "within the combined spread" in residual_line(steady)
