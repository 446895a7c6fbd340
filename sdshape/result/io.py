"""Reading result files written by ``sdshape run --json`` or ``pytest bench/ --benchmark-json``.

Both are pytest-benchmark documents whose benchmarks carry sdshape's
``extra_info``; a result is identified by (stage, shape, backend, precision,
batch, resolution, steps). Anything that is not such a file is a usage error
with one line saying what is wrong. Every row is parsed into a
:class:`~sdshape.result.model.StageResult`, whose memory figures pass the rules
as they are read, so a file written before the rules existed holds no
impossible figure for its readers either.
"""

from __future__ import annotations

import json
import math
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdshape.core.errors import UsageError
from sdshape.core.vocabulary import ID_FIELDS
from sdshape.result import rules
from sdshape.result.model import StageResult
from sdshape.result.records import MEMORY_FIGURES
from sdshape.result.schema import version_of

ID_TYPES = {"stage": str, "shape": str, "backend": str, "precision": str, "batch": int, "resolution": int, "steps": int}
STAT_KEYS = ("min", "max", "mean", "median", "iqr", "stddev", "q1", "q3")
MAX_COUNT = 2**31 - 1  # batch, resolution, steps: what a database integer column holds


def _number(value: Any) -> bool:
    """A finite int or float (not a bool). An int of any size is finite: JSON allows 400-digit integers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _bad_round(name: str, value: Any) -> str | None:
    """What is wrong with one round's seconds, or None: finite, positive, within what a round can take."""
    if not _number(value) or value <= 0:
        return f"{name} = {value!r} is not a positive, finite number of seconds"
    if value > rules.MAX_ROUND_S:
        return f"{name} = {value!r} s is longer than a day ({rules.MAX_ROUND_S:g} s): not a measurement"
    if value < rules.MIN_ROUND_S:
        return f"{name} = {value!r} s is shorter than a nanosecond: not a measurement"
    return None


def _bad_rounds(name: str, data: Any) -> str | None:
    if not isinstance(data, (list, array)):
        return f"{name} is not a list of rounds ({type(data).__name__})"
    for index, value in enumerate(data):
        problem = _bad_round(f"{name}[{index}]", value)
        if problem:
            return problem
    return None


def _bad_memory(memory: Any) -> str | None:
    """Memory figures are byte counts within what any machine holds. A negative peak or rise is left to
    the rules (``sdshape.result.rules``: flagged and nulled, as the first GPU run's files hold them);
    every other figure is refused here."""
    if memory is None:
        return None
    if not isinstance(memory, dict):
        return f"memory is not an object of byte counts ({type(memory).__name__})"
    for key in MEMORY_FIGURES:
        value = memory.get(key)
        if value is None:
            continue
        if not _number(value):
            return f"memory.{key} = {value!r} is not a finite number of bytes"
        if abs(value) > rules.MAX_MEMORY_BYTES:
            return f"memory.{key} = {value!r} is beyond 1 PiB: not a memory figure"
        if value < 0 and key not in rules.CHECKED:
            return f"memory.{key} = {value!r}: a byte count cannot be negative"
    return None


def _bad_energy(info: dict[str, Any]) -> str | None:
    energy = info.get("energy_j")
    if energy is not None and (not _number(energy) or energy < 0):
        return f"energy_j = {energy!r} is not a finite, non-negative number of joules"
    if energy is not None and energy > rules.MAX_ENERGY_J:
        return f"energy_j = {energy!r} is beyond {rules.MAX_ENERGY_J:g} J (a day at 10 kW): not a measurement"
    power = info.get("power_w_mean")
    if power is not None and (not _number(power) or not 0 <= power <= rules.MAX_POWER_W):
        return f"power_w_mean = {power!r} is not a power of 0 to {rules.MAX_POWER_W:g} W"
    return None


def bad_numbers(info: dict[str, Any], stats: dict[str, Any] | None) -> str | None:
    """What is wrong with the numbers a verdict is made from, or None: ids of the right types, rounds
    that are positive seconds no longer than a day, statistics within the same bounds, memory within
    1 PiB, energy within a day at 10 kW (``sdshape.result.rules``). Every reader, the store included,
    applies it, so no stored figure can overflow what is computed from it."""
    for field, kind in ID_TYPES.items():
        value = info.get(field)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"id field {field} = {value!r} is not a {kind.__name__}"
        if kind is int and not 0 <= value <= MAX_COUNT:
            return f"id field {field} = {value!r} is not a count (0 to {MAX_COUNT})"
    if stats is not None:
        data = stats.get("data")
        if data is not None:
            problem = _bad_rounds("stats.data", data)
            if problem:
                return problem
        for key in STAT_KEYS:
            value = stats.get(key)
            if value is None:
                continue
            if not _number(value):
                return f"stats.{key} = {value!r} is not a finite number"
            if not 0 <= value <= rules.MAX_ROUND_S:
                return f"stats.{key} = {value!r} is not a time of 0 to {rules.MAX_ROUND_S:g} s"
    device_rounds = info.get("device_rounds_s")
    if device_rounds is not None:
        problem = _bad_rounds("device_rounds_s", device_rounds)
        if problem:
            return problem
    return _bad_memory(info.get("memory")) or _bad_energy(info) or _bad_reference(info.get("reference"))


MAX_THROUGHPUT = 1e9  # TFLOP/s or GB/s: a thousand times any machine's; beyond it a figure is not a measurement


def _bad_reference(reference: Any) -> str | None:
    """The reference workload's figures (``history`` divides by them): an object whose figures' medians and
    spreads are finite, the medians positive and within :data:`MAX_THROUGHPUT`."""
    if reference is None:
        return None
    if not isinstance(reference, dict) or not isinstance(reference.get("figures", []), list):
        return f"reference is not an object with a list of figures ({type(reference).__name__})"
    for index, figure in enumerate(reference.get("figures", [])):
        if not isinstance(figure, dict):
            return f"reference.figures[{index}] is not an object"
        value, spread = figure.get("median"), figure.get("spread")
        if value is not None and (not _number(value) or not 0 < value <= MAX_THROUGHPUT):
            return f"reference.figures[{index}].median = {value!r} is not a throughput of 0 to {MAX_THROUGHPUT:g}"
        if spread is not None and (not _number(spread) or not 0 <= spread <= MAX_THROUGHPUT):
            return f"reference.figures[{index}].spread = {spread!r} is not a finite, non-negative fraction"
    return None


def _compact(info: dict[str, Any], stats: dict[str, Any] | None) -> None:
    """Rounds as packed doubles (8 bytes a round instead of 32): a long run's file holds millions."""
    if stats is not None and isinstance(stats.get("data"), list):
        stats["data"] = array("d", stats["data"])
    if isinstance(info.get("device_rounds_s"), list) and all(_number(v) for v in info["device_rounds_s"]):
        info["device_rounds_s"] = array("d", info["device_rounds_s"])


@dataclass
class ResultFile:
    path: Path
    machine_info: dict[str, Any]
    rows: dict[tuple, StageResult]
    datetime: str | None

    @property
    def gpu(self) -> str:
        return machine_label(self.machine_info)


def machine_label(info: dict[str, Any]) -> str:
    """The machine a result is from: the GPU's name, or the CPU's."""
    return info.get("gpu_name") or f"CPU {info.get('cpu_model') or info.get('processor') or '?'}"


def load(path: str | Path) -> ResultFile:
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: cannot read: {error}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{path}: not JSON ({error.msg} at line {error.lineno})") from None
    except RecursionError:
        raise UsageError(f"{path}: not a results file (JSON nested deeper than Python's reader follows)") from None
    except ValueError as error:  # an integer of more than 4300 digits (Python's int_max_str_digits)
        raise UsageError(f"{path}: not a results file ({str(error).partition(';')[0]})") from None
    except MemoryError:
        raise UsageError(f"{path}: {len(text):,} characters do not fit in this machine's memory as JSON") from None
    del text  # a long run's file is tens of MB: not held while its rows are built
    if not isinstance(document, dict) or not isinstance(document.get("benchmarks"), list):
        raise UsageError(f"{path}: not a results file (expected a JSON object with a 'benchmarks' list)")
    if not document["benchmarks"]:
        raise UsageError(f"{path}: holds no results (its 'benchmarks' list is empty)")
    rows: dict[tuple, StageResult] = {}
    for index, bench in enumerate(document["benchmarks"]):
        name = bench.get("name", f"#{index}") if isinstance(bench, dict) else f"#{index}"
        info = bench.get("extra_info") if isinstance(bench, dict) else None
        if not isinstance(info, dict):
            raise UsageError(f"{path}: benchmark {name!r} has no extra_info (not written by sdshape)")
        try:
            version_of(info)
        except UsageError as error:
            raise UsageError(f"{path}: benchmark {name!r}: {error}") from None
        missing = [field for field in ID_FIELDS if field not in info]
        if missing:
            raise UsageError(f"{path}: benchmark {name!r} lacks sdshape fields {', '.join(missing)}")
        stats = bench.get("stats")
        if stats is not None and not isinstance(stats, dict):
            raise UsageError(f"{path}: benchmark {name!r} has malformed stats")
        problem = bad_numbers(info, stats)
        if problem:
            raise UsageError(f"{path}: benchmark {name!r}: {problem}")
        _compact(info, stats)
        row = StageResult.from_extra_info(info, stats)
        if row.id.key in rows:
            raise UsageError(f"{path}: two results share the id {row.id.as_dict()}")
        rows[row.id.key] = row
    machine_info = document.get("machine_info") if isinstance(document.get("machine_info"), dict) else {}
    return ResultFile(path, machine_info, rows, document.get("datetime"))
