"""The environment fingerprint's fields, and how two fingerprints are told apart (no torch needed).

``sdshape.measurement.environment`` fills the fingerprint on the measuring machine; readers
of result files (compare, history, pytest-benchmark's compare hook) use only
the names and helpers here.
"""

from __future__ import annotations

from typing import Any

GPU_FIELDS = (
    "gpu_name",
    "gpu_memory_bytes",
    "driver_version",
    "cuda_runtime_version",
    "cuda_driver_version",
    "cudnn_version",
    "power_limit_w",
    "sm_clock_max_mhz",
)
# The GPU fields plus the library and host fields a change can come from.
ENVIRONMENT_FIELDS = (
    *GPU_FIELDS,
    "torch_version",
    "diffusers_version",
    "transformers_version",
    "onnxruntime_version",
    "onnxruntime_gpu_version",
    "tensorrt_version",
    "cpu_model",
    "cpu_count",
    "torch_threads",
    "python_version",
)


def device_label(info: dict[str, Any]) -> str:
    """A short human label: the GPU name, or the CPU model and thread count."""
    if info.get("gpu_name"):
        return (
            f"{info['gpu_name']} (driver {info.get('driver_version') or '?'}, CUDA {info.get('cuda_runtime_version')})"
        )
    return f"CPU: {info.get('cpu_model')} ({info.get('torch_threads')} torch threads)"


def flat_fingerprint(environment: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint with each library's version as a top-level ``<library>_version`` field."""
    flat = dict(environment)
    for library, version in environment.get("libraries", {}).items():
        flat[f"{library.replace('-', '_')}_version"] = version
    return flat


def fingerprint_diff(base: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Fingerprint fields whose values differ between two machine_info dicts: the likely causes, in sight."""
    return [
        {"field": name, "base": base.get(name), "new": new.get(name)}
        for name in ENVIRONMENT_FIELDS
        if base.get(name) != new.get(name)
    ]
