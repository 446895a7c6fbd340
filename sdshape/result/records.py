"""The typed sub-records of a result row, and the one JSON mapping every record derives from its fields.

A :class:`Record` writes each of its fields under the field's name (or ``metadata["key"]``), always,
None included, so a reader sees every key the schema has; keys it does not declare (from a newer
sdshape, or a producer's additions) are kept in ``extra`` and written back unchanged. Nothing here
lists keys by hand: the fields are the list (``sdshape.result.model`` maps the flat row the same way).

:class:`MemoryFigures` is the one place a memory figure is named; every other module reads them as
attributes, and a producer handing over an unknown name fails at construction.

Length: over 300 lines, because every nested record of a row is declared here, a few lines each, beside
the mapping they share: the schema reference (docs/results-schema.md) is generated from this one file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from functools import cache
from typing import Any, Self


def json_key(f: Field) -> str:
    return f.metadata.get("key", f.name)


def to_json(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, list):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    return value


def from_json(f: Field, raw: Any) -> Any:
    """A field's value from JSON: a record parsed as its class, a null as the field's empty default."""
    if raw is None:
        return f.default_factory() if f.default_factory is not MISSING else None
    record = f.metadata.get("record")
    if record is not None and isinstance(raw, Mapping):
        return record.from_json(raw)
    if isinstance(raw, list):
        each = f.metadata.get("records")
        return [each.from_json(item) if each and isinstance(item, Mapping) else item for item in raw]
    return raw


@cache
def section_fields(cls: type) -> tuple[Field, ...]:
    """The fields that map to JSON keys (``metadata["derived"]`` ones are computed, not stored); per class,
    once: reading 10,000 stored rows asked 175,000 times."""
    return tuple(f for f in fields(cls) if not f.metadata.get("derived") and not f.metadata.get("extra"))


def write_flat(section: Any) -> dict[str, Any]:
    """A section's fields as flat keys (``omit_none`` fields only when they hold a value)."""
    out = {}
    for f in section_fields(type(section)):
        value = getattr(section, f.name)
        if value is None and f.metadata.get("omit_none"):
            continue
        out[json_key(f)] = to_json(value)
    return out


@cache
def _readers(cls: type) -> tuple[tuple[str, str, Field, bool], ...]:
    """(name, JSON key, field, plain) per field: a plain field's value is taken as it is."""
    return tuple(
        (f.name, json_key(f), f, not (f.metadata.get("record") or f.metadata.get("records")))
        for f in section_fields(cls)
    )


def read_flat(cls: type, info: Mapping[str, Any], **given: Any) -> Any:
    """A section from flat keys; absent keys take the field's default."""
    kwargs = {}
    for name, key, f, plain in _readers(cls):
        if key in info:
            raw = info[key]
            kwargs[name] = raw if plain and raw is not None and not isinstance(raw, list) else from_json(f, raw)
    return cls(**{**kwargs, **given})


def record(cls: type, key: str | None = None, **more: Any) -> Any:
    """A field holding a nested record (None when the row has none)."""
    return field(default=None, metadata={"record": cls, **({"key": key} if key else {}), **more})


def keyed(key: str, **kwargs: Any) -> Any:
    """A field written under another JSON key than its name."""
    return field(metadata={"key": key}, **kwargs)


@cache
def keys_of(cls: type) -> frozenset[str]:
    return frozenset(json_key(f) for f in section_fields(cls))


@dataclass(kw_only=True)
class Record:
    """A nested JSON object with typed fields; unknown keys ride along in ``extra``."""

    extra: dict[str, Any] = field(default_factory=dict, metadata={"extra": True})

    def to_json(self) -> dict[str, Any]:
        return {**write_flat(self), **self.extra}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Self | None:
        if data is None:
            return None
        known = keys_of(cls)
        return read_flat(cls, data, extra={key: value for key, value in data.items() if key not in known})

    def get(self, key: str, default: Any = None) -> Any:
        """Dict-style reading by JSON key, for code that walks records generically (tables, charts)."""
        for f in section_fields(type(self)):
            if json_key(f) == key:
                return getattr(self, f.name)
        return self.extra.get(key, default)


@dataclass(kw_only=True)
class Parity(Record):
    """The stage's output against eager fp32 on the same inputs (``sdshape.measurement.parity``)."""

    reference: str | None = None  # what the output was compared with (eager fp32)
    ok: bool | None = None  # within the precision's tolerance, no NaN, no Inf
    rel_l2: float | None = None  # relative L2 distance of the flattened outputs
    max_abs: float | None = None  # largest absolute difference
    nan: int | None = None  # NaN values in the output
    inf: int | None = None  # Inf values in the output
    tolerance_rel_l2: float | None = None  # the precision's tolerance
    error: str | None = None  # why the outputs could not be compared (shapes differ)
    is_reference: bool = False  # this row is eager fp32 itself


@dataclass(kw_only=True)
class KernelCall(Record):
    name: str | None = None  # the kernel (or ATen op) name, cut at 200 characters
    kind: str | None = field(default=None, metadata={"key": "class"})  # attention, convolution, gemm, ...
    total_s: float | None = None  # its time in the profiled round
    calls: int | None = None  # launches in the profiled round


@dataclass(kw_only=True)
class Kernels(Record):
    """The profiled round (``sdshape.measurement.profiling``): how busy the GPU was, time by kernel class."""

    source: str | None = None  # what was timed: CUDA kernels, or top-level ATen ops on the CPU
    busy_fraction: float | None = None  # union of kernel, copy and memset intervals over the round
    busy_note: str | None = None  # why busy_fraction is null
    busy_s: float | None = None  # the union of device intervals
    wall_s: float | None = None  # the round's wall time
    kernel_s: float | None = None  # summed kernel time (overlaps counted twice)
    by_class: dict[str, float] = field(default_factory=dict)  # seconds per kernel class
    top: list[KernelCall] = field(default_factory=list, metadata={"records": KernelCall})  # the longest kernels
    host_bound: bool | None = None  # busy_fraction below 0.8: the GPU waited for the host


@dataclass(kw_only=True)
class StoppingRecord(Record):
    """How the timed rounds ended (``sdshape.measurement.stopping``)."""

    criterion: str | None = None  # fixed | ci | max_rounds | max_time
    rounds: int | None = None  # timed rounds taken
    rel_ci: float | None = None  # half the median's CI over the median, at the end
    target_ci: float | None = None  # --target-ci (null for a fixed count)
    confidence: float | None = None  # of the interval (0.95)


@dataclass(kw_only=True)
class Residual(Record):
    """The pipeline's median against the sum of its stages' (``sdshape.result.shares.residual_check``)."""

    sum_of_stages_s: float | None = None  # text encoder + denoise loop + VAE decode medians
    residual_s: float | None = None  # pipeline median minus that sum
    residual_share: float | None = None  # of the pipeline median
    combined_spread_s: float | None = None  # the four IQRs added in quadrature
    within_spread: bool | None = None  # the pipeline agrees with its stages
    stages_slower_than_pipeline: list[str] = field(default_factory=list)  # a contradiction when any


@dataclass(kw_only=True)
class ArtifactRecord(Record):
    """How a stage's runner was made (``sdshape.backends.base.Artifact``); ``parts`` per component when
    a stage runs several (the text encoders of a two-encoder shape)."""

    cache: str | None = None  # built | reused | none | mixed
    build_s: float | None = None  # build time spent in this run (0 when reused)
    path: str | None = None  # the cached file
    notes: list[str] = field(default_factory=list)  # exporter, fused-op counts, arena settings
    cached_build_s: float | None = None  # what a reused artifact cost when it was built
    prepare_s: float | None = None  # the whole prepare call
    weight_bytes: int | None = None  # weights the runner holds itself (ONNX Runtime's copy)
    parts: dict[str, Any] | None = None  # per component, when the stage has several


@dataclass(kw_only=True)
class Sampler(Record):
    """The background sampler over the stage's window (``sdshape.measurement.sampling``)."""

    interval_s: float | None = None  # --sample-interval
    samples_in_window: int | None = None  # readings taken while the stage ran
    window_s: float | None = None  # the window's length
    sources: str | None = None  # nvml+psutil, or psutil


@dataclass(kw_only=True)
class Throttle(Record):
    """NVML's clock-event reasons seen during the timed rounds (``sdshape.measurement.clocks`` sorts them)."""

    reasons: list[str] = field(default_factory=list)  # the throttling ones: sw_power_cap, hw_slowdown, *_thermal_*, ...
    throttled: bool | None = None  # any of them seen; null: not read (no NVML: on the CPU)
    other_reasons: list[str] = field(default_factory=list)  # seen, not throttling: applications_clocks_setting, ...
    readings: int | None = None  # readings of the reasons in the window
    available: bool | None = None  # NVML reported the reasons (null: a file written before this was recorded)
    note: str | None = None  # why they were not read

    @property
    def label(self) -> str | None:
        """``throttled: hw_thermal_slowdown`` for a throttled row, as tables flag it; None otherwise."""
        return f"throttled: {', '.join(self.reasons) or 'reason not named'}" if self.throttled else None


@dataclass(kw_only=True)
class Clocks(Record):
    """The GPU's clocks during the timed rounds, and the clock settings in force (NVML)."""

    available: bool | None = None  # NVML reported the clocks
    note: str | None = None  # why they were not read
    readings: int | None = None  # readings of the SM clock in the window
    sm_mhz: dict[str, float] | None = None  # min, median, max SM clock over the readings
    mem_mhz: dict[str, float] | None = None  # min, median, max memory clock over the readings
    applications_sm_mhz: int | None = None  # SM application clock in force (nvidia-smi -ac MEM,SM)
    applications_mem_mhz: int | None = None  # memory application clock in force
    default_applications_sm_mhz: int | None = None  # the board's default (nvidia-smi -rac restores it)
    default_applications_mem_mhz: int | None = None  # the board's default memory application clock
    persistence_mode: bool | None = None  # nvidia-smi -pm 1: the driver keeps settings with no process running


@dataclass(kw_only=True)
class VramCap(Record):
    """``--vram-cap``: the emulated card, what it counted, and whether the stage fit."""

    cap_bytes: int | None = None  # the card emulated
    cuda_context_bytes: int | None = None  # counted against the cap, as a real card holds it
    held_before_bytes: int | None = None  # what the process held when the cap was set
    torch_budget_bytes: int | None = None  # cap minus held: what torch's allocator may use
    torch_fraction: float | None = None  # that budget as torch's per-process memory fraction
    device_total_bytes: int | None = None  # the real card
    policy: str | None = None  # which components were resident
    fits: bool | None = None  # the stage ran (false: out of memory)


@dataclass(kw_only=True)
class Baseline(Record):
    """Whether memory settled before the session's baseline was read (``sdshape.measurement.memory``)."""

    settled: bool | None = None  # memory came back to the level before the previous session
    judged_by: list[str] = field(default_factory=list)  # the readings it was judged by
    excess_bytes: dict[str, Any] = field(default_factory=dict)  # how far above that level, per reading
    slack_bytes: int | None = None  # the margin allowed
    waited_s: float | None = None  # how long it waited


@dataclass(kw_only=True)
class MemoryFigures(Record):
    """Every memory figure a stage records, in bytes; None: not read here, or nulled by a rule.

    Peaks are over the session's pre-load baseline; rises over the level just before the stage.
    """

    weights_bytes: int | None = None  # the stage's own components' weights
    resident_weights_bytes: int | None = None  # everything resident while it ran: the least a peak can hold
    cuda_context_bytes: int | None = None
    weights_unpaged_bytes: int | None = None  # CPU: mapped weight pages never touched (not in RSS)
    nvml_process_peak_bytes: int | None = None  # NVML, this process: the figure a GPU row stands on
    nvml_device_peak_bytes: int | None = None  # NVML, the whole device
    nvml_process_rise_bytes: int | None = None  # NVML, this process, over the level before the stage
    host_rss_peak_bytes: int | None = None  # host RSS: the figure a CPU row stands on
    host_rss_rise_bytes: int | None = None  # host RSS over the level before the stage
    torch_allocated_peak_bytes: int | None = None  # torch's allocator: tensors
    torch_reserved_peak_bytes: int | None = None  # torch's allocator: segments held (GPU fallback figure)
    torch_reserved_end_bytes: int | None = None  # torch's reserved at the window's end
    torch_reserved_at_baseline_bytes: int | None = None  # torch's reserved when the baseline was read
    torch_activation_peak_bytes: int | None = None  # allocated peak over what was resident

    def figures(self) -> dict[str, int | None]:
        """name -> bytes for every declared figure (what the rules walk)."""
        return {f.name: getattr(self, f.name) for f in section_fields(type(self))}


MEMORY_FIGURES = tuple(f.name for f in section_fields(MemoryFigures))


@dataclass(kw_only=True)
class ReferenceFigure(Record):
    """One fixed workload of the run's reference workload (``sdshape.measurement.reference_workload``):
    its throughput over the timed repetitions, and the conditions under which two runs' figures compare."""

    name: str | None = None  # gemm | device_copy | host_to_device
    unit: str | None = None  # TFLOP/s (GEMM) or GB/s (copies: bytes copied per second, 1 GB = 1e9 bytes)
    median: float | None = None  # median throughput over the repetitions; null: not applicable, or failed
    low: float | None = None  # the slowest repetition's throughput
    high: float | None = None  # the fastest repetition's throughput
    spread: float | None = None  # the repetitions' IQR over their median
    repetitions: list[float] = field(default_factory=list)  # each timed repetition's throughput
    calls_per_repetition: int | None = None  # calls timed together in one repetition (one synchronize)
    warmup: int | None = None  # untimed repetitions before the timed ones
    conditions: str | None = None  # what two runs' figures must share to compare (size, dtype, device)
    note: str | None = None  # why there is no figure: not applicable here (host-to-device on the CPU), or failed


@dataclass(kw_only=True)
class ReferenceWorkload(Record):
    """The reference workload: fixed operations measured once per run beside the model, so that ``history``
    can tell a step of the machine or driver (the reference moved with the model) from one of the software
    (only the model moved). Not the parity reference (eager fp32 outputs, ``parity.reference``)."""

    method: int | None = None  # the reference's method version: figures of different versions never compare
    device: str | None = None  # cuda | cpu
    device_name: str | None = None  # the GPU's name, or the CPU's torch thread count
    timer: str | None = None  # CUDA events around each repetition, or perf_counter on the CPU
    cost_s: float | None = None  # wall time of the whole reference, warm-up and allocation included
    figures: list[ReferenceFigure] = field(default_factory=list, metadata={"records": ReferenceFigure})

    def summary(self) -> dict[str, dict[str, Any]]:
        """name -> what ``history`` compares (median, spread, unit, conditions with the method), for the
        figures that were measured: the form the store keeps in its ``reference`` column."""
        return {
            f.name: {
                "median": f.median,
                "spread": f.spread,
                "unit": f.unit,
                "conditions": f"{f.conditions} (method {self.method})",
            }
            for f in self.figures
            if f.name and f.median is not None
        }
