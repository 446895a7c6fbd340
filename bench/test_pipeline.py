"""Pipeline: the three stages in sequence; extra_info['residual'] compares it with their sum."""

from sdshape.run.benchsuite import run_stage_benchmark


def test_pipeline(benchmark, session, pool):
    run_stage_benchmark(benchmark, session, "pipeline", pool)
