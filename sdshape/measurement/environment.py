"""The environment fingerprint stored with every result (pytest-benchmark's machine_info).

Results are only comparable when these match; the regression tools diff them.
Volatile readings (clocks, temperature, power) belong to each result, not here.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from typing import Any

import torch

from sdshape.measurement.nvml import NvmlDevice, device_facts
from sdshape.result.fingerprint import GPU_FIELDS

LIBRARIES = ("torch", "diffusers", "transformers", "accelerate", "onnxruntime", "onnxruntime-gpu", "tensorrt")


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def fingerprint(device: torch.device, nvml: NvmlDevice | None, nvml_reason: str | None) -> dict[str, Any]:
    """GPU, driver, CUDA, cuDNN and library versions; GPU fields are null on the CPU."""
    import psutil

    info: dict[str, Any] = dict.fromkeys(GPU_FIELDS)
    info["device"] = device.type
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu_name=props.name,
            gpu_memory_bytes=props.total_memory,
            cuda_runtime_version=torch.version.cuda,
            cudnn_version=torch.backends.cudnn.version(),
            compute_capability=f"{props.major}.{props.minor}",
        )
        if nvml is not None:
            info.update({k: v for k, v in device_facts(nvml).items() if v is not None})
    info["nvml"] = {"available": nvml is not None, "reason": nvml_reason}
    info["cpu_model"] = _cpu_model()
    info["cpu_count"] = os.cpu_count()
    info["torch_threads"] = torch.get_num_threads()
    info["host_memory_bytes"] = psutil.virtual_memory().total
    info["python_version"] = platform.python_version()
    info["platform"] = platform.platform()
    info["libraries"] = library_versions()
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
