"""Throttling and clocks: NVML's clock-event reasons and clocks read while a stage is timed (a fake pynvml, no
GPU here), sorted into throttling and not, recorded, flagged in tables, left out of history's steps."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from rich.console import Console

from sdshape.measurement import clocks, nvml
from sdshape.measurement.sampling import BackgroundSampler, CombinedSource
from sdshape.regression.compare import Floors, compare_rows
from sdshape.regression.history import collect, throttled_note
from sdshape.regression.points import Observation, Point, observations
from sdshape.result.io import load
from sdshape.result.model import StageResult
from sdshape.result.records import Clocks, Throttle
from tests.present.test_tables import H100
from tests.regression.test_compare import MACHINE, rounds, row

HW_THERMAL, SW_POWER_CAP, IDLE, APP_CLOCKS = 0x40, 0x4, 0x1, 0x2


class ScriptedNvml:
    """pynvml as far as the sampler and the clock settings reach: clock-event reasons and clocks follow a
    script, one entry per reading (the last repeats); ``old_names_only`` is a library before CUDA 12."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM = 1, 2
    NVML_CLOCK_ID_APP_CLOCK_TARGET, NVML_CLOCK_ID_APP_CLOCK_DEFAULT = 1, 2
    NVML_FEATURE_ENABLED = 1

    def __init__(self, script: list[tuple[int, int, int]], old_names_only: bool = False):
        self.script = list(script)  # (reasons, SM MHz, memory MHz) per reading
        self.now = self.script[0]
        if not old_names_only:
            self.nvmlDeviceGetCurrentClocksEventReasons = self._reasons
            self.nvmlDeviceGetClock = self._clock
        self.nvmlDeviceGetCurrentClocksThrottleReasons = self._reasons

    def nvmlDeviceGetMemoryInfo(self, handle):  # a reading's first query: the script moves on
        self.now = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return SimpleNamespace(used=1 << 30, total=80 << 30)

    def _reasons(self, handle):
        return self.now[0]

    def _clock(self, handle, kind, clock_id):
        target = clock_id == self.NVML_CLOCK_ID_APP_CLOCK_TARGET
        return {self.NVML_CLOCK_SM: 1785 if target else 1980, self.NVML_CLOCK_MEM: 2619}[kind]

    def nvmlDeviceGetClockInfo(self, handle, kind):
        return self.now[kind]

    def nvmlDeviceGetPowerUsage(self, handle):
        return 300_000

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return []

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return 1_000

    def nvmlDeviceGetApplicationsClock(self, handle, kind):
        return {1: 1500, 2: 2619}[kind]

    def nvmlDeviceGetDefaultApplicationsClock(self, handle, kind):
        return {1: 1980, 2: 2619}[kind]

    def nvmlDeviceGetPersistenceMode(self, handle):
        return 1


@pytest.fixture
def scripted(monkeypatch):
    def install(script, **kwargs):
        module = ScriptedNvml(script, **kwargs)
        monkeypatch.setattr(nvml, "_pynvml", lambda: module)
        return module

    return install


def _timed_window(readings_inside: int):
    """A sampler on the fake GPU (no thread: interval 0): a reading before the window, the window's own
    opening and closing readings, and ``readings_inside`` polled between them."""
    sampler = BackgroundSampler(CombinedSource(nvml.NvmlSource(nvml.NvmlDevice("h"), pid=1)), interval_s=0)
    sampler.start()  # the baseline reading
    opened = sampler.open_window()
    for _ in range(readings_inside):
        sampler.read_now()
    return sampler.close_window(opened)


def test_a_reason_seen_mid_window_is_recorded_with_the_clocks(scripted):
    # baseline, opening (idle: between rounds), two readings under a thermal slowdown, then clear again
    scripted([(0, 1980, 2619), (IDLE, 1980, 2619), (HW_THERMAL, 1410, 2619), (HW_THERMAL | SW_POWER_CAP, 1350, 2619),
              (0, 1980, 2619)])  # fmt: skip
    window = _timed_window(readings_inside=3)
    assert window.throttled and window.slowdown_reasons == ["sw_power_cap", "hw_thermal_slowdown"]
    assert window.sm_clock_mhz == {"min": 1350, "median": 1980, "max": 1980}
    assert window.mem_clock_mhz == {"min": 2619, "median": 2619, "max": 2619}
    assert window.reason_readings == window.samples == 5  # the opening reading, three inside, the closing one


def test_idle_and_user_settings_are_not_throttling(scripted):
    scripted([(IDLE | APP_CLOCKS, 1500, 2619), (APP_CLOCKS | 0x800, 1500, 2619)])
    window = _timed_window(readings_inside=2)
    assert not window.throttled and window.slowdown_reasons == []
    assert window.other_reasons == ["applications_clocks_setting", "unknown_0x800"]  # gpu_idle is dropped


def test_a_library_without_the_new_name_falls_back_to_the_old(scripted):
    scripted([(0, 1980, 2619), (SW_POWER_CAP, 1700, 2619)], old_names_only=True)
    window = _timed_window(readings_inside=1)
    assert window.slowdown_reasons == ["sw_power_cap"]
    settings = nvml.clock_settings(nvml.NvmlDevice("h"))  # nvmlDeviceGetClock missing too: the old queries
    assert settings == {
        "applications_sm_mhz": 1500, "default_applications_sm_mhz": 1980, "applications_mem_mhz": 2619,
        "default_applications_mem_mhz": 2619, "persistence_mode": True,
    }  # fmt: skip


def test_unknown_bits_and_no_readings():
    assert clocks.union([None, None]) is None  # never read: not "no reason"
    assert clocks.union([None, 0x4, 0x40]) == 0x44
    assert clocks.other(0x1 | 0x2 | 0x1000) == ["applications_clocks_setting", "unknown_0x1000"]
    assert clocks.spread([None]) is None


def _session(device_open: bool):
    """What clock_records reads of a session's context: whether NVML is there, why not, the clock settings
    (read from NVML by the session when the stage is recorded)."""
    settings = nvml.clock_settings(nvml.NvmlDevice("h")) if device_open else {}
    return SimpleNamespace(nvml_available=device_open, nvml_reason="no NVIDIA GPU in use", clock_settings=settings)


def test_the_records_on_a_gpu_and_on_the_cpu(scripted):
    from sdshape.run.recording import clock_records

    scripted([(0, 1980, 2619), (HW_THERMAL, 1410, 2619)])
    window = _timed_window(readings_inside=1)
    throttle, clock = clock_records(_session(True), window)
    assert throttle.throttled and throttle.available and throttle.reasons == ["hw_thermal_slowdown"]
    assert clock.sm_mhz["min"] == 1410 and clock.applications_sm_mhz == 1785 and clock.persistence_mode
    # The CPU: no NVML, so both records say so and hold nothing measured (not "not throttled").
    throttle, clock = clock_records(_session(False), window)
    assert throttle.available is False and throttle.throttled is None and throttle.reasons == []
    assert clock.available is False and clock.sm_mhz is None and clock.note == "no NVIDIA GPU in use"
    assert clock_records(_session(True), None) == (None, None)  # the stage never reached its timed rounds


def _h100_rows() -> list[StageResult]:
    return list(load(H100 / "sd15-eager-fp16.json").rows.values())


def test_old_files_without_the_records_still_read():
    for result in _h100_rows():
        assert result.conditions.clocks is None and result.throttled is None
        assert result.conditions.throttle.available is None  # written before availability was recorded
    throttled = {"reasons": ["sw_power_cap"], "throttled": True}  # the first throttle record's two keys
    assert Throttle.from_json(throttled).label == "throttled: sw_power_cap"


def test_a_throttled_row_is_flagged_and_round_trips():
    from sdshape.present.report.runs import throttle_note
    from sdshape.present.tables import allocation_table

    rows = _h100_rows()
    loop = next(r for r in rows if r.stage == "denoise_loop")
    loop.conditions.throttle = Throttle(reasons=["hw_thermal_slowdown"], throttled=True, readings=40, available=True)
    loop.conditions.clocks = Clocks(available=True, sm_mhz={"min": 1410, "median": 1755, "max": 1980})
    console = Console(record=True, width=400)
    console.print(allocation_table(rows))
    printed = [line for line in console.export_text().splitlines() if "denoise_loop" in line]
    assert "throttled: hw_thermal_slowdown" in printed[0]
    again = StageResult.from_extra_info(json.loads(json.dumps(loop.to_extra_info())), None)
    assert again.throttled == "throttled: hw_thermal_slowdown" and again.conditions.clocks.sm_mhz["min"] == 1410
    assert "denoise_loop (throttled: hw_thermal_slowdown)" in throttle_note([f"denoise_loop ({loop.throttled})"])


def _observation(day: int, level: float, throttled: str | None = None) -> Observation:
    point = Point(f"2026-10-{day:02d}", None, level, 0.001, 10, None, {}, {}, throttled=throttled)
    return Observation({"stage": "denoise_loop", "gpu_name": "NVIDIA H200"}, point, "NVIDIA H200")


def test_history_leaves_throttled_runs_out_of_step_detection_and_says_so():
    levels = [1.0] * 6 + [1.3, 1.3]  # the last two runs were slow because the GPU was hot
    hot = [_observation(day + 1, level, "throttled: hw_thermal_slowdown" if level > 1 else None)
           for day, level in enumerate(levels)]  # fmt: skip
    cool = [_observation(day + 1, level) for day, level in enumerate(levels)]
    assert [s.verdict for t in collect(cool) for s in t.steps] == ["regression"]  # the same runs, unflagged
    (timeline,) = collect(hot)
    assert timeline.steps == [] and len(timeline.points) == 6 and len(timeline.throttled) == 2
    assert throttled_note([timeline]).startswith("2 throttled runs left out of step detection")
    assert throttled_note(collect(cool)) is None


def test_history_reads_the_flag_from_files_and_the_store(tmp_path):
    from sdshape.regression.points import stored_observations
    from sdshape.store.db import open_store
    from sdshape.store.ingest import add_file

    document = {
        "machine_info": MACHINE,
        "datetime": "2026-11-01T12:00:00",
        "benchmarks": [row(data=rounds(1, 0.01, 5, 1))],
    }
    document["benchmarks"][0]["extra_info"]["throttle"] = {"reasons": ["sw_power_cap"], "throttled": True}
    path = tmp_path / "hot.json"
    path.write_text(json.dumps(document))
    assert [o.point.throttled for o in observations([load(path)])] == ["throttled: sw_power_cap"]
    engine = open_store(str(tmp_path / "store.sqlite"))
    add_file(engine, path)
    assert [o.point.throttled for o in stored_observations(engine)] == ["throttled: sw_power_cap"]


def test_compare_names_a_throttled_side_and_keeps_its_verdict():
    base = next(r for r in _h100_rows() if r.stage == "denoise_loop")
    new = StageResult.from_extra_info(base.to_extra_info(), {"data": base.rounds, "median": base.median})
    unflagged = compare_rows(base, new, Floors())
    new.conditions.throttle = Throttle(reasons=["sw_power_cap"], throttled=True)
    flagged = compare_rows(base, new, Floors())
    assert flagged.verdict == unflagged.verdict and flagged.throttled == ["new: throttled: sw_power_cap"]
    assert unflagged.throttled == []
