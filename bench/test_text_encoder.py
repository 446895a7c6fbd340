"""Text encoder: fixed token ids (77 tokens), unconditional + conditional rows under CFG."""

from sdshape.run.benchsuite import run_stage_benchmark


def test_text_encoder(benchmark, session, pool):
    run_stage_benchmark(benchmark, session, "text_encoder", pool)
