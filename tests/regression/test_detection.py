"""Detection on labelled series (sdshape.regression.detection): the series carry the step they claim, an
alert is scored by the documented rules, the labelled timeline is judged as ``history`` judges it, and
history's F1 on the compiled-GPU noise model stays above the floor derived from bench/detection.py."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from sdshape.regression.detection import (
    FIRST,
    GPU_MODELS,
    MIN_AFTER,
    ModelNoise,
    Series,
    Settings,
    evaluate,
    is_true,
    planted,
    points_of,
    recorded,
    timeline_of,
)  # fmt: skip
from sdshape.regression.history import collect
from sdshape.regression.points import Observation

ROOT = Path(__file__).resolve().parents[2]
H200_EAGER = sorted((ROOT / "results/h200-aa-2026-12-04/runs").glob("eager-*.json"))

# Measured by bench/detection.py on the held-out seed, 300 series a cell (docs/regression-tracking.md, "How well
# it detects"): F1 for 5% steps 1.00 (compiled model, both modes) and 0.94 / 0.95 (eager GPU-bound, whole / CI);
# no false alert on a step-free series of either. The floors leave a margin for this test's 60 series on another
# seed; the defaults before the tuning (a 5% floor, 1% least run-to-run sigma) scored 0.55 to 0.82 there.
SEED = 7  # neither the tuning seed (1) nor the report seed (2)
COUNT = 60
F1_FLOOR = {
    ("model: compiled (CUDA graphs)", "history, whole"): 0.92,
    ("model: compiled (CUDA graphs)", "history, CI"): 0.92,
    ("model: eager, GPU-bound", "history, whole"): 0.85,
    ("model: eager, GPU-bound", "history, CI"): 0.85,
}
FALSE_PER_SERIES_CEILING = 0.05  # step-free series


def test_planted_series_carry_their_step():
    flat = ModelNoise("flat", 0.0, 0.0, "no noise", rounds=4)
    series = planted(flat, random.Random(0), 0.10, length=20)
    assert FIRST <= series.step_at <= 20 - MIN_AFTER
    assert all(run == (1.0,) * 4 for run in series.runs[: series.step_at])
    assert all(run == pytest.approx((1.1,) * 4) for run in series.runs[series.step_at :])
    assert planted(flat, random.Random(0), 0.0).step_at is None


def test_an_alert_within_one_run_of_the_step_is_true():
    series = Series(runs=(), size=0.05, step_at=10)  # the last run before the step is 9
    assert [is_true(series, after, 0.05) for after in (7, 8, 9, 10, 11)] == [False, True, True, True, False]
    assert not is_true(series, 9, -0.05)  # an improvement at a planted slowdown is false
    assert not is_true(Series((), 0.0, None), 9, 0.05)


def test_recorded_noise_is_scaled_to_a_level_of_one():
    noise = recorded("h200 vae", H200_EAGER, "vae_decode", "test")
    medians = sorted(sorted(run)[len(run) // 2] for run in noise.runs)
    assert len(noise.runs) == 13 and medians[6] == pytest.approx(1.0, rel=0.02)
    with pytest.raises(ValueError, match="need at least 2"):
        recorded("none", H200_EAGER[:3], "no_such_stage", "test")


def test_labelled_timeline_is_judged_as_history_judges_it():
    """timeline_of skips history.collect's series-key hashing; its steps and verdicts must be the same."""
    noise = recorded("h200 loop", H200_EAGER, "denoise_loop", "test")
    rng = random.Random(3)
    for size in (0.0, 0.10, 0.25, 0.25, 0.5):
        series = planted(noise, rng, size)
        mine = timeline_of(points_of(series.runs), Settings())
        observed = [Observation({"stage": "denoise_loop"}, point, "model") for point in points_of(series.runs)]
        (theirs,) = collect(observed)
        assert [(s.after, s.verdict, round(s.z, 9)) for s in mine.steps] == [
            (s.after, s.verdict, round(s.z, 9)) for s in theirs.steps
        ]
        assert mine.run_to_run == theirs.run_to_run


@pytest.mark.parametrize("model", GPU_MODELS[:2], ids=lambda m: m.name)
def test_history_f1_on_gpu_noise_stays_above_the_floor(model):
    detectors = ("history, whole", "history, CI")
    scores = evaluate(model, 0.05, COUNT, SEED, detectors=detectors)
    for detector in detectors:
        score, floor = scores[detector], F1_FLOOR[(model.name, detector)]
        assert score.f1 is not None and score.f1 >= floor, (detector, score.as_dict())
    for detector, score in evaluate(model, 0.0, COUNT, SEED, detectors=detectors).items():
        assert score.false / score.series <= FALSE_PER_SERIES_CEILING, (detector, score.as_dict())
