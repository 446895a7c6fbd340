"""What identifies a series: an explicit, hashed key of the GPU setup and the measured configuration.

Two rows are points of one series when every key field is equal. The default key names the hardware
(GPU model and memory; the CPU model and threads on the CPU), the software that decides speed (driver,
CUDA runtime, cuDNN, torch, diffusers, transformers, ONNX Runtime, TensorRT, Python), the backend and
its options, and the result id (stage, shape, precision, batch, resolution, steps). Everything else a result holds is
information: hostname, clocks, temperature, power. Never the hostname: cloud CI machines are new every
run, and a key on them would start a new series each time.

``history`` follows a *timeline*: the series key without the software versions. Along a timeline a
version that changes is an event (driver 550 to 580), so a step can be attributed to it.
``--series-by`` and ``--ignore`` change the key; every report says which key it used.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sdshape.core.errors import UsageError
from sdshape.core.vocabulary import ID_FIELDS
from sdshape.result.fingerprint import ENVIRONMENT_FIELDS
from sdshape.result.model import StageResult

HARDWARE_FIELDS = ("gpu_name", "gpu_memory_bytes", "cpu_model", "torch_threads")
# Every version the environment fingerprint records; the CUDA driver API's version follows the driver's.
VERSION_FIELDS = tuple(
    name for name in ENVIRONMENT_FIELDS if name.endswith("_version") and name != "cuda_driver_version"
)
CONFIG_FIELDS = (*ID_FIELDS, "backend_options")
SERIES_FIELDS = (*HARDWARE_FIELDS, *VERSION_FIELDS, *CONFIG_FIELDS)
INFO_FIELDS = ("node", "hostname", "sm_clock_mhz", "power_limit_w", "temperature_c", "gpu_uuid")


@dataclass(frozen=True)
class SeriesKey:
    """Which fields make a series, and which of them are events along a timeline."""

    fields: tuple[str, ...] = SERIES_FIELDS
    events: tuple[str, ...] = VERSION_FIELDS

    @classmethod
    def chosen(cls, series_by: Iterable[str] | None = None, ignore: Iterable[str] = ()) -> SeriesKey:
        """``--series-by a,b`` (only those) and ``--ignore c`` (all but those); unknown names are refused."""
        known = (*SERIES_FIELDS, *INFO_FIELDS)
        picked = tuple(series_by) if series_by else SERIES_FIELDS
        dropped = tuple(ignore)
        for name in (*picked, *dropped):
            if name not in known:
                raise UsageError(f"unknown series field {name!r}; valid: {', '.join(known)}")
        if "stage" not in picked or "stage" in dropped:
            raise UsageError("the series key must keep stage: a stage's time is not another's")
        fields = tuple(name for name in picked if name not in dropped)
        return cls(fields, tuple(name for name in VERSION_FIELDS if name in fields))

    @property
    def timeline_fields(self) -> tuple[str, ...]:
        return tuple(name for name in self.fields if name not in self.events)

    def describe(self) -> str:
        return f"series key: {', '.join(self.fields)}; events along a timeline: {', '.join(self.events) or 'none'}"


def values_of(extra_info: Mapping[str, Any], machine_info: Mapping[str, Any]) -> dict[str, Any]:
    """Every key and information field of one row: its id and backend options, its machine's fields."""
    values = {name: machine_info.get(name) for name in (*HARDWARE_FIELDS, *VERSION_FIELDS, *INFO_FIELDS)}
    if machine_info.get("gpu_name"):  # the CPU does not name a GPU setup
        values["cpu_model"] = values["torch_threads"] = None
    values.update({name: extra_info.get(name) for name in ID_FIELDS})
    values["backend_options"] = extra_info.get("backend_options") or {}
    values["hostname"] = machine_info.get("node") or machine_info.get("hostname")
    return values


def row_values(row: StageResult, machine_info: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`values_of` for a parsed row: its id and the options its backend ran with."""
    return values_of({**row.id.as_dict(), "backend_options": row.backend.options}, machine_info)


def digest(values: Mapping[str, Any], fields: Iterable[str]) -> str:
    """A stable 16-hex-digit hash of the named fields (JSON with sorted keys: order-independent)."""
    chosen = {name: values.get(name) for name in fields}
    text = json.dumps(chosen, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
