"""Denoising loop: Euler scheduler from the model's config, CFG batch doubling, per-step times in extra_info."""

from sdshape.run.benchsuite import run_stage_benchmark


def test_denoise_loop(benchmark, session, pool):
    run_stage_benchmark(benchmark, session, "denoise_loop", pool)
