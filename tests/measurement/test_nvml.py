"""NvmlSource and device facts against a fake pynvml (no GPU here): units, PID lookup, fallbacks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from sdshape.measurement import nvml


class FakeNvml:
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2

    def __init__(self, processes, energy_mj=123_456, has_event_reasons=True):
        self.processes = processes
        self.energy = energy_mj
        if has_event_reasons:
            self.nvmlDeviceGetCurrentClocksEventReasons = lambda handle: 0x4

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(used=5 * 2**30, total=80 * 2**30)

    def nvmlDeviceGetPowerUsage(self, handle):
        return 250_500  # milliwatts

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle):
        return 0x20

    def nvmlDeviceGetClockInfo(self, handle, kind):
        return {self.NVML_CLOCK_SM: 1755, self.NVML_CLOCK_MEM: 2619}[kind]

    def nvmlDeviceGetMaxClockInfo(self, handle, kind):
        return 1980

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return self.processes

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if self.energy is None:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return self.energy

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return 700_000

    def nvmlSystemGetCudaDriverVersion(self):
        return 12040

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA H100 80GB HBM3"

    def nvmlSystemGetDriverVersion(self):
        return "550.54.15"


@pytest.fixture
def fake(monkeypatch):
    def install(**kwargs):
        module = FakeNvml(**kwargs)
        monkeypatch.setattr(nvml, "_pynvml", lambda: module)
        return module

    return install


def test_reading_units_and_own_process(fake):
    fake(processes=[SimpleNamespace(pid=1, usedGpuMemory=10), SimpleNamespace(pid=42, usedGpuMemory=3 * 2**30)])
    source = nvml.NvmlSource(nvml.NvmlDevice(handle="h"), pid=42)
    reading = source.read()
    assert reading == {
        "nvml_device_bytes": 5 * 2**30,
        "nvml_process_bytes": 3 * 2**30,
        "power_w": pytest.approx(250.5),
        "sm_clock_mhz": 1755,
        "mem_clock_mhz": 2619,
        "clock_event_reasons": 0x4,
    }
    assert source.energy_mj() == 123_456.0


def test_missing_process_old_driver_and_no_energy_counter(fake):
    fake(processes=[SimpleNamespace(pid=1, usedGpuMemory=10)], energy_mj=None, has_event_reasons=False)
    source = nvml.NvmlSource(nvml.NvmlDevice(handle="h"), pid=42)
    reading = source.read()
    assert reading["nvml_process_bytes"] is None  # not listed: no context yet, or another PID namespace
    assert reading["clock_event_reasons"] == 0x20  # the pre-12.x name of the same query
    assert source.energy_mj() is None


def test_device_facts(fake):
    fake(processes=[])
    facts = nvml.device_facts(nvml.NvmlDevice(handle="h"))
    assert facts == {
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "gpu_memory_bytes": 80 * 2**30,
        "driver_version": "550.54.15",
        "cuda_driver_version": "12.4",
        "power_limit_w": 700.0,
        "sm_clock_max_mhz": 1980,
    }


def test_cpu_device_has_no_nvml_and_says_why():
    device, reason = nvml.open_device(torch.device("cpu"))
    assert device is None and "CPU" in reason
