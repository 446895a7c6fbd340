"""VAE decode: latents to pixels."""

from sdshape.run.benchsuite import run_stage_benchmark


def test_vae_decode(benchmark, session, pool):
    run_stage_benchmark(benchmark, session, "vae_decode", pool)
