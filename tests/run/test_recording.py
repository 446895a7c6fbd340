"""A row is a pure function of the plan and the measured value: built here from values alone, with no session,
no model and nothing on the machine read; and the shares across rows are the campaign's, not the writer's."""

from __future__ import annotations

import pytest

from sdshape.config.plan import resolve
from sdshape.measurement import nvml
from sdshape.measurement.energy import EnergyReading
from sdshape.measurement.measure import Outcome
from sdshape.models import mapped_weights
from sdshape.result.document import document, stats_dict
from sdshape.result.model import ResultId, StageResult
from sdshape.result.records import Baseline, Parity, StoppingRecord, VramCap
from sdshape.run import campaign
from sdshape.run.measured import MeasuredStage, SessionContext
from sdshape.run.recording import result_of


def _context(**changes) -> SessionContext:
    values = dict(
        backend_label="eager",
        backend_name="eager",
        backend_options={},
        environment={},
        nvml_reason="no NVML on the CPU",
        nvml_available=False,
        clock_settings={},
        sampler_interval_s=0.02,
        built=None,
        facts={},
        artifacts={},
        prepare_s=0.0,
        resident_weights_bytes=1 << 20,
        cuda_context_bytes=None,
        torch_reserved_at_baseline=None,
        baseline=Baseline(settled=True, judged_by=["host_rss_bytes"], slack_bytes=1 << 28, waited_s=0.0),
        vram_cap=None,
    )
    return SessionContext(**{**values, **changes})


def _measured(timer: str | None = None, **context) -> MeasuredStage:
    rounds = [0.011, 0.010, 0.012]
    outcome = Outcome(
        "vae_decode", "ok", None, "perf_counter", rounds_s=rounds,
        stopping=StoppingRecord(criterion="fixed", rounds=3, confidence=0.95),
    )  # fmt: skip
    parity = Parity(reference="eager fp32", ok=True, rel_l2=1e-6, nan=0, inf=0)
    energy = EnergyReading(None, None, 3, note="no NVML")
    return MeasuredStage(_context(**context), outcome, "ok", None, parity, energy, stats_dict(rounds), timer=timer)


@pytest.fixture
def plan():
    return resolve(shape="tiny", device="cpu", steps=2, rounds=3, warmup=1)


@pytest.fixture
def nothing_is_read(monkeypatch):
    """Anything result_of might read from the machine fails loudly."""

    def refuse(*_, **__):
        raise AssertionError("result_of read the machine")

    monkeypatch.setattr(nvml, "clock_settings", refuse)
    monkeypatch.setattr(mapped_weights, "unpaged_bytes", refuse)


def test_a_row_is_built_from_values_alone_and_the_same_values_give_the_same_row(plan, nothing_is_read):
    measured = _measured()
    first, second = result_of(plan, measured), result_of(plan, measured)
    assert first.to_extra_info() == second.to_extra_info()
    assert first.id == ResultId(
        "vae_decode", plan.options.shape, "eager", plan.options.precision, 1, plan.options.resolution, 2
    )
    assert first.median == pytest.approx(0.011) and first.timing.timer == "perf_counter"
    assert first.parity.ok and first.timing.stopping.criterion == "fixed"
    assert first.energy.joules_per_call is None and first.energy.note == "no NVML"
    assert first.memory.baseline.settled and first.conditions.throttle is None  # no sampler window here


def test_a_harness_timer_goes_in_front_and_the_device_clock_beside(plan, nothing_is_read):
    row = result_of(plan, _measured(timer="pytest-benchmark time.perf_counter"))
    assert row.timing.timer == "pytest-benchmark time.perf_counter"
    assert row.timing.device_timer == "perf_counter" and row.timing.device_rounds_s == [0.011, 0.010, 0.012]


def test_the_vram_cap_record_gets_the_stage_s_verdict_and_the_session_s_stays_as_it_was(plan, nothing_is_read):
    cap = VramCap(cap_bytes=8 << 30, torch_budget_bytes=7 << 30)
    row = result_of(plan, _measured(vram_cap=cap))
    assert row.cap.fits is True and row.cap.cap_bytes == 8 << 30
    assert cap.fits is None  # the session's record is a value: the row got its own copy


def test_shares_are_assembled_by_the_campaign_and_the_writer_only_serializes(monkeypatch, plan):
    medians = {"text_encoder": 0.1, "denoise_loop": 0.6, "vae_decode": 0.3, "pipeline": 1.0}

    def rows(self, label):
        made = []
        for stage, median in medians.items():
            row = StageResult(ResultId(stage, "tiny", label, "fp32", 1, 64, 2))
            row.timing.stats = stats_dict([median])
            made.append(row)
        return made, {}

    monkeypatch.setattr(campaign.Campaign, "measure", rows)
    unrun = rows(None, "eager")[0]
    doc = document(unrun, {})
    assert all(entry["extra_info"]["time_share"] is None for entry in doc["benchmarks"])  # the writer adds none
    collected: list[StageResult] = []
    quiet = resolve(shape="tiny", device="cpu", parity=False, reference_workload=False)
    campaign.Campaign(quiet).run(on_session=lambda results, _: collected.extend(results))
    shares = {row.stage: row.timing.time_share for row in collected}
    assert shares == {"text_encoder": pytest.approx(0.1), "denoise_loop": pytest.approx(0.6),
                      "vae_decode": pytest.approx(0.3), "pipeline": None}  # fmt: skip
    assert collected[-1].timing.residual is not None and collected[-1].timing.residual.within_spread
