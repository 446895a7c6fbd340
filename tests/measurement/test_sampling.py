"""The sampler's arithmetic against a scripted reading source."""

from __future__ import annotations

import time

import pytest

from sdshape.measurement.sampling import BackgroundSampler, HostSource, summarize


class ScriptedSource:
    """Returns scripted readings in order (repeating the last), and a scripted energy counter."""

    def __init__(self, readings: list[dict], energies_mj: list[float] | None = None):
        self.readings = list(readings)
        self.energies = list(energies_mj or [])
        self.calls = 0

    def read(self) -> dict:
        self.calls += 1
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]

    def energy_mj(self) -> float | None:
        return self.energies.pop(0) if self.energies else None


def test_peaks_are_over_the_preload_baseline():
    readings = [
        {"nvml_process_bytes": None, "nvml_device_bytes": 1000, "host_rss_bytes": 500},  # before loading
        {"nvml_process_bytes": 300, "nvml_device_bytes": 1300, "host_rss_bytes": 900},
        {"nvml_process_bytes": 800, "nvml_device_bytes": 1800, "host_rss_bytes": 700},
        {"nvml_process_bytes": 400, "nvml_device_bytes": 1400, "host_rss_bytes": 650},
    ]
    stats = summarize(readings[1:], readings[0], 0.0, 2.0, 5_000.0, 9_500.0, opening=readings[1])
    # No process entry before the CUDA context exists: its baseline counts as zero.
    assert stats.peaks == {"nvml_process_bytes": 800, "nvml_device_bytes": 800, "host_rss_bytes": 400}
    assert stats.rises == {"nvml_process_bytes": 500, "nvml_device_bytes": 500, "host_rss_bytes": 0}
    assert stats.energy_j == pytest.approx(4.5)
    assert stats.samples == 3
    assert stats.duration_s == 2.0


MIB = 2**20


def test_evicted_file_pages_are_not_taken_for_memory_given_back():
    """Under memory pressure (ONNX Runtime's optimizer child takes 16 GiB for SD 1.5's UNet) the kernel
    may evict the parent's library pages: RSS falls with nothing released, and a plain RSS growth reads
    100 MiB under the weights. Only anonymous memory and file pages that grew may count."""
    baseline = {"host_rss_bytes": 1200 * MIB, "host_file_bytes": 400 * MIB}
    opening = {"host_rss_bytes": 1200 * MIB + 469 * MIB - 100 * MIB, "host_file_bytes": 300 * MIB}
    during = {"host_rss_bytes": 1200 * MIB + 469 * MIB + 20 * MIB - 100 * MIB, "host_file_bytes": 300 * MIB}
    stats = summarize([opening, during], baseline, 0.0, 1.0, None, None, opening=opening)
    assert stats.peaks["host_rss_bytes"] == 489 * MIB  # weights + 20 MiB of activations, not 389 MiB
    assert stats.rises["host_rss_bytes"] == 20 * MIB


def test_file_pages_that_grow_still_count():
    """Weights loaded with ``--weights`` from safetensors are memory-mapped: they are file pages, paged in
    as the stage touches them, and they are memory the stage holds."""
    baseline = {"host_rss_bytes": 1000 * MIB, "host_file_bytes": 400 * MIB}
    mapped = {"host_rss_bytes": 1319 * MIB, "host_file_bytes": 719 * MIB}
    stats = summarize([mapped], baseline, 0.0, 1.0, None, None, opening=baseline)
    assert stats.peaks["host_rss_bytes"] == 319 * MIB
    assert stats.rises["host_rss_bytes"] == 319 * MIB


def test_without_a_file_reading_growth_is_plain_rss():
    stats = summarize([{"host_rss_bytes": 700}], {"host_rss_bytes": 900}, 0.0, 1.0, None, None)
    assert stats.peaks["host_rss_bytes"] == -200  # left for the memory rules to flag, never hidden


def test_host_source_reads_mapped_file_pages_as_file_backed(tmp_path):
    """On the real kernel: touching a memory-mapped file raises RSS and its file-backed part together."""
    import mmap

    path = tmp_path / "weights.bin"
    size = 64 * MIB
    path.write_bytes(b"\x01" * size)  # real data, not a sparse hole the kernel might map to its zero page
    source = HostSource()
    before = source.read()
    if before["host_file_bytes"] is None:
        pytest.skip("psutil reports no file-backed RSS on this platform")
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_READ) as mapped:
        total = sum(mapped[offset] for offset in range(0, size, mmap.PAGESIZE))
        after = source.read()
    assert total == size // mmap.PAGESIZE
    assert after["host_file_bytes"] - before["host_file_bytes"] >= size * 0.9
    stats = summarize([after], before, 0.0, 1.0, None, None)
    assert stats.peaks["host_rss_bytes"] >= size * 0.9


def test_power_clock_and_slowdown_reasons():
    readings = [
        {"power_w": 100.0, "sm_clock_mhz": 1980, "clock_event_reasons": 0x1},  # idle: benign
        {"power_w": 300.0, "sm_clock_mhz": 1500, "clock_event_reasons": 0x4 | 0x20},
        {"power_w": 200.0, "sm_clock_mhz": 1700, "clock_event_reasons": 0},
    ]
    stats = summarize(readings, {}, 0.0, 1.0, None, None)
    assert stats.power_w_mean == pytest.approx(200.0)
    assert stats.sm_clock_mhz == {"min": 1500, "median": 1700, "max": 1980}
    assert stats.slowdown_reasons == ["sw_power_cap", "sw_thermal_slowdown"]
    assert stats.throttled
    assert stats.energy_j is None
    assert stats.peaks["nvml_device_bytes"] is None


def test_sampler_window_has_readings_even_when_shorter_than_the_interval():
    source = ScriptedSource(
        [{"host_rss_bytes": 100}, {"host_rss_bytes": 150}, {"host_rss_bytes": 400}, {"host_rss_bytes": 120}],
        energies_mj=[1_000.0, 1_250.0],
    )
    sampler = BackgroundSampler(source, interval_s=60.0)  # the thread will not fire during the test
    with sampler:
        opened = sampler.open_window()
        stats = sampler.close_window(opened)
    assert sampler.baseline == {"host_rss_bytes": 100}
    assert stats.samples >= 2
    assert stats.peaks["host_rss_bytes"] == 300  # 400 read at close, minus the 100 baseline
    assert stats.energy_j == pytest.approx(0.25)


def test_background_thread_samples_at_its_interval():
    source = ScriptedSource([{"host_rss_bytes": 1}])
    with BackgroundSampler(source, interval_s=0.005) as sampler:
        time.sleep(0.2)
    assert sampler.sample_count > 10


def test_interval_zero_runs_no_thread_but_windows_keep_their_readings():
    source = ScriptedSource([{"host_rss_bytes": 100}, {"host_rss_bytes": 300}, {"host_rss_bytes": 200}])
    with BackgroundSampler(source, interval_s=0.0) as sampler:
        assert sampler._thread is None
        time.sleep(0.05)
        stats = sampler.close_window(sampler.open_window())
    assert source.calls == 3 and stats.samples == 2  # baseline, then the window's opening and closing
    assert stats.peaks["host_rss_bytes"] == 200
