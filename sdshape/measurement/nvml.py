"""NVML access (nvidia-ml-py): open the GPU torch runs on, and read it.

Every reading is best-effort: a field the driver does not expose (process memory
inside a container's PID namespace, energy on pre-Volta GPUs) is ``None``, and
the reason is kept, never guessed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class NvmlDevice:
    """An opened NVML handle for the GPU that ``torch_device`` names."""

    handle: Any


def _pynvml():
    import pynvml

    return pynvml


def open_device(torch_device: torch.device) -> tuple[NvmlDevice | None, str | None]:
    """NVML handle for a torch CUDA device, or ``(None, reason)``."""
    if torch_device.type != "cuda":
        return None, "no NVIDIA GPU in use (running on the CPU)"
    try:
        pynvml = _pynvml()
        pynvml.nvmlInit()
    except Exception as error:  # ImportError, NVMLError_LibraryNotFound, ...
        return None, f"NVML unavailable: {error}"
    index = torch_device.index if torch_device.index is not None else torch.cuda.current_device()
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    try:
        if uuid is not None:
            # torch numbers devices after CUDA_VISIBLE_DEVICES; the UUID is unambiguous.
            handle = pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
        else:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    except Exception as error:
        return None, f"NVML cannot open GPU {index}: {error}"
    return NvmlDevice(handle), None


def _call(function: str, *args: Any) -> Any:
    try:
        return getattr(_pynvml(), function)(*args)
    except Exception:
        return None


class NvmlSource:
    """Reading source for :class:`sdshape.measurement.sampling.BackgroundSampler` on one GPU."""

    def __init__(self, device: NvmlDevice, pid: int | None = None):
        self.device = device
        self.pid = pid if pid is not None else os.getpid()

    def _process_bytes(self) -> int | None:
        """This process's GPU memory; None before it has a CUDA context, or when NVML cannot see
        its PID (a container PID namespace), or when the driver withholds the figure."""
        processes = _call("nvmlDeviceGetComputeRunningProcesses", self.device.handle) or []
        for process in processes:
            if process.pid == self.pid:
                return process.usedGpuMemory
        return None

    def read(self) -> dict[str, float | int | None]:
        pynvml = _pynvml()
        handle = self.device.handle
        memory = _call("nvmlDeviceGetMemoryInfo", handle)
        power_mw = _call("nvmlDeviceGetPowerUsage", handle)
        return {
            "nvml_device_bytes": memory.used if memory is not None else None,
            "nvml_process_bytes": self._process_bytes(),
            "power_w": power_mw / 1e3 if power_mw is not None else None,
            "sm_clock_mhz": _call("nvmlDeviceGetClockInfo", handle, pynvml.NVML_CLOCK_SM),
            "mem_clock_mhz": _call("nvmlDeviceGetClockInfo", handle, pynvml.NVML_CLOCK_MEM),
            "clock_event_reasons": clock_event_reasons(handle),
        }

    def energy_mj(self) -> float | None:
        value = _call("nvmlDeviceGetTotalEnergyConsumption", self.device.handle)
        return float(value) if value is not None else None


def clock_event_reasons(handle: Any) -> int | None:
    """The clock-event (throttle) reasons bit mask now: CUDA 12's name first, then the one older drivers and
    nvidia-ml-py releases have (the same bits; ``sdshape.measurement.clocks``). None when neither answers."""
    reasons = _call("nvmlDeviceGetCurrentClocksEventReasons", handle)
    return reasons if reasons is not None else _call("nvmlDeviceGetCurrentClocksThrottleReasons", handle)


def _application_clock(handle: Any, kind: int, clock_id: int, older: str) -> int | None:
    """An application clock by ``nvmlDeviceGetClock`` (the current query), else by its deprecated
    ``nvmlDeviceGetApplicationsClock``-style function ``older``."""
    value = _call("nvmlDeviceGetClock", handle, kind, clock_id)
    return value if value is not None else _call(older, handle, kind)


def clock_settings(device: NvmlDevice) -> dict[str, Any]:
    """The clock settings in force: the application clocks (``nvidia-smi -ac MEM,SM``) against their
    defaults, and persistence mode. NVML has no query for clocks locked with ``nvidia-smi -lgc``: the SM
    clock's range over a window (min equal to max) is what shows a lock."""
    pynvml = _pynvml()
    handle = device.handle
    target, default = pynvml.NVML_CLOCK_ID_APP_CLOCK_TARGET, pynvml.NVML_CLOCK_ID_APP_CLOCK_DEFAULT
    settings: dict[str, Any] = {}
    for name, kind in (("sm", pynvml.NVML_CLOCK_SM), ("mem", pynvml.NVML_CLOCK_MEM)):
        settings[f"applications_{name}_mhz"] = _application_clock(
            handle, kind, target, "nvmlDeviceGetApplicationsClock"
        )
        settings[f"default_applications_{name}_mhz"] = _application_clock(
            handle, kind, default, "nvmlDeviceGetDefaultApplicationsClock"
        )
    mode = _call("nvmlDeviceGetPersistenceMode", handle)
    settings["persistence_mode"] = None if mode is None else mode == pynvml.NVML_FEATURE_ENABLED
    return settings


def device_facts(device: NvmlDevice) -> dict[str, Any]:
    """Static facts for the environment fingerprint."""
    pynvml = _pynvml()
    handle = device.handle
    memory = _call("nvmlDeviceGetMemoryInfo", handle)
    limit = _call("nvmlDeviceGetEnforcedPowerLimit", handle)
    cuda_driver = _call("nvmlSystemGetCudaDriverVersion")
    name = _call("nvmlDeviceGetName", handle)
    driver = _call("nvmlSystemGetDriverVersion")
    return {
        "gpu_name": name.decode() if isinstance(name, bytes) else name,
        "gpu_memory_bytes": memory.total if memory is not None else None,
        "driver_version": driver.decode() if isinstance(driver, bytes) else driver,
        "cuda_driver_version": f"{cuda_driver // 1000}.{cuda_driver % 1000 // 10}" if cuda_driver else None,
        "power_limit_w": limit / 1e3 if limit is not None else None,
        "sm_clock_max_mhz": _call("nvmlDeviceGetMaxClockInfo", handle, pynvml.NVML_CLOCK_SM),
    }


def reading_source(device: torch.device) -> tuple[Any, NvmlDevice | None, str | None]:
    """What the sampler polls on ``device``: NVML and host RSS on a GPU, host RSS alone otherwise;
    plus the NVML handle, or the reason there is none."""
    from sdshape.measurement.sampling import CombinedSource, HostSource

    nvml, reason = open_device(device)
    sources = [HostSource()] if nvml is None else [NvmlSource(nvml), HostSource()]
    return CombinedSource(*sources), nvml, reason
