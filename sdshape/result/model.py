"""The typed result of one stage: what a session returns, what files hold, what every reader parses.

A :class:`StageResult` is written as one pytest-benchmark ``benchmarks`` item
(``extra_info`` keeps its flat keys, ``stats`` the raw rounds) and read back
into the same classes, so ``run``, ``compare``, ``history``, ``report``, the
feasibility model and the explorer all see one shape. The flat keys are the
sections' fields (their names, or ``metadata["key"]``); nested objects are the
records of :mod:`sdshape.result.records`. Keys a reader does not know are kept
in ``extra`` and written back unchanged. Like optimum-benchmark's
``BenchmarkReport``: typed records that round-trip to JSON.

:meth:`Memory.standing_peak` is the one place that decides which memory figure
stands for a stage.

Length: just over 300 lines, because the row's sections and their JSON mapping stay together.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from sdshape.core.vocabulary import ID_FIELDS
from sdshape.result.records import (
    MEMORY_FIGURES,
    ArtifactRecord,
    Baseline,
    Clocks,
    Kernels,
    MemoryFigures,
    Parity,
    ReferenceWorkload,
    Residual,
    Sampler,
    StoppingRecord,
    Throttle,
    VramCap,
    keyed,
    keys_of,
    read_flat,
    record,
    write_flat,
)
from sdshape.result.rules import check_memory
from sdshape.result.schema import SCHEMA_VERSION, upgrade


@dataclass(frozen=True)
class ResultId:
    """What regression tools match results by, across files."""

    stage: str
    shape: str
    backend: str
    precision: str
    batch: int
    resolution: int
    steps: int

    @property
    def key(self) -> tuple:
        return tuple(getattr(self, name) for name in ID_FIELDS)

    @property
    def run_key(self) -> tuple:
        """The run this stage belongs to (the id without the stage)."""
        return self.key[1:]

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ID_FIELDS}


class Figure(NamedTuple):
    """A memory figure that stands for something: its bytes (None: no valid reading), label and key."""

    bytes: int | None
    label: str
    key: str


# Which figure stands for a stage's peak and for its activations, per device, in order of preference.
PEAK_ORDER = {
    "cuda": (("nvml_process_peak_bytes", "NVML process"), ("torch_reserved_peak_bytes", "torch reserved")),
    "cpu": (("host_rss_peak_bytes", "host RSS"),),
}
ACTIVATION_ORDER = {
    "cuda": (("torch_activation_peak_bytes", "torch allocator peak over resident"),),
    "cpu": (("host_rss_rise_bytes", "host RSS rise"),),
}
assert {key for order in (PEAK_ORDER, ACTIVATION_ORDER) for choices in order.values() for key, _ in choices} <= set(
    MEMORY_FIGURES
)


@dataclass
class Memory:
    """The memory readings of a stage and what is known to be wrong with them."""

    figures: MemoryFigures = field(default_factory=MemoryFigures, metadata={"key": "memory", "record": MemoryFigures})
    notes: list[str] = keyed("memory_notes", default_factory=list)  # what the figures mean here
    error: str | None = keyed("memory_error", default=None)  # why figures are null
    baseline: Baseline | None = record(Baseline)  # did memory settle before the baseline was read

    def checked(self, device: str) -> Memory:
        """These readings with every figure that breaks a rule (``sdshape.result.rules``) set to None."""
        f = self.figures
        # 0 resident (an offload policy keeps no weight on the GPU between calls): no floor. None (rows written
        # before the figure existed): the stage's own weights.
        resident = f.weights_bytes if f.resident_weights_bytes is None else f.resident_weights_bytes
        checked, error = check_memory(f.figures(), resident, device)
        if error is None:
            return self
        joined = f"{self.error}; {error}" if self.error else error
        return Memory(replace(f, **checked), self.notes, joined, self.baseline)

    def _first(self, order: dict[str, tuple], device: str) -> Figure:
        choices = order.get(device, order["cpu"])
        for key, label in choices:
            value = getattr(self.figures, key)
            if value is not None:
                return Figure(value, label, key)
        return Figure(None, choices[0][1], choices[0][0])

    def standing_peak(self, device: str) -> Figure:
        """The figure that stands for the stage's memory.

        On a GPU, NVML's reading for this process (it sees cuDNN workspaces, ONNX
        Runtime, TensorRT), else torch's reserved peak; on the CPU, host RSS. A
        figure that broke a rule is None, so it stands for nothing.
        """
        return self._first(PEAK_ORDER, device)

    def activations(self, device: str) -> Figure:
        """The stage's own working memory over its resident weights: torch's allocated peak over what was
        resident on a GPU, the host-RSS rise on the CPU."""
        return self._first(ACTIVATION_ORDER, device)


def caption_label(device: str | None) -> str:
    """The label of a device's first-choice peak figure (what a table is captioned with)."""
    return PEAK_ORDER.get(device or "cpu", PEAK_ORDER["cpu"])[0][1]


@dataclass
class Timing:
    """The timed rounds (seconds, warm-up excluded) and what is derived from them."""

    rounds_s: list[float] = field(default_factory=list, metadata={"derived": True})  # ``stats["data"]``
    timer: str | None = None  # the clock: CUDA events, perf_counter, or pytest-benchmark's
    warmup_rounds: int | None = None  # untimed rounds before the timed ones
    stats: dict[str, Any] | None = field(default=None, metadata={"derived": True})  # pytest-benchmark's; in ``stats``
    step_times: dict[str, Any] | None = None  # the UNet loop's per-step times
    time_share: float | None = None  # of the three per-image stages' summed medians (one image)
    residual: Residual | None = record(Residual, omit_none=True)  # the pipeline against the sum of its stages
    stopping: StoppingRecord | None = record(StoppingRecord)  # how the rounds ended: fixed, stable CI, or a cap
    device_timer: str | None = field(default=None, metadata={"omit_none": True})  # pytest bench/: device clock
    device_rounds_s: list[float] | None = field(default=None, metadata={"omit_none": True})

    @property
    def median(self) -> float | None:
        return (self.stats or {}).get("median")

    @property
    def iqr(self) -> float | None:
        return (self.stats or {}).get("iqr")

    @property
    def rel_ci(self) -> float | None:
        """Half the 95% CI of the median over the median, from the rounds (``sdshape.measurement.stopping``)."""
        from sdshape.core.statistics import relative_ci

        return relative_ci(self.rounds_s) if self.rounds_s else None


@dataclass
class Energy:
    """Energy per call from NVML's counter over a window sized to its update period."""

    joules_per_call: float | None = keyed("energy_j", default=None)
    method: dict[str, Any] | None = keyed("energy_method", default=None)  # how (``sdshape.measurement.energy``)
    note: str | None = keyed("energy_note", default=None)  # why it is None
    share: float | None = keyed("energy_share", default=None)
    power_w_mean: float | None = None  # NVML's mean power over the window


@dataclass
class Conditions:
    """What the stage ran under, besides its id."""

    device: str = "cpu"  # cuda | cpu
    device_name: str | None = None  # the GPU's name, or the CPU's model and torch's thread count
    guidance_scale: float | None = None
    cfg: bool | None = None  # classifier-free guidance: the denoiser's batch doubled
    sequence_length: int | None = None  # text tokens per prompt
    family: str | None = None  # the denoiser's model family (unet, pixart, sd3, flux)
    guidance: str | None = None  # cfg (batch doubled), distilled (a guidance input), none
    vae_precision: str | None = None  # where the VAE ran in another precision (SDXL's force_upcast: fp32)
    policy: str = "all_resident"  # residency policy (sdshape run --policy); rows written before it: all resident
    vae_tiling: bool = False  # the VAE decoded in tiles (enable_tiling)
    vae_slicing: bool = False  # the VAE decoded one image at a time (enable_slicing)
    composition_notes: list[str] = field(default_factory=list)  # how a composed shape adapted its parts
    seed: int | None = None  # for the random weights and the inputs
    weights: str | None = None  # random (from the published config), or the --weights folder
    components: dict[str, str] | None = None  # kind -> zoo component name
    sm_clock_mhz: dict[str, float] | None = None  # min, median, max over the stage's window
    methods: dict[str, int] = field(default_factory=dict)  # metric -> method version (core.vocabulary.METHODS)
    throttle: Throttle | None = record(Throttle)  # clock-event reasons seen while timed: a throttled row is flagged
    clocks: Clocks | None = record(Clocks)  # SM and memory clocks seen, the clock settings
    sampler: Sampler | None = record(Sampler)
    command: list[str] | None = None  # the `sdshape run` arguments that made the row, less --json and --store


@dataclass
class Cost:
    """Static cost of the stage's component(s): parameters and FLOPs."""

    params: int | None = None  # parameters of the stage's component(s)
    param_share: float | None = None  # of the whole pipeline's parameters
    params_executed: int | None = None  # the parameters a call runs (the VAE decode runs only its decoder)
    flops: int | None = None  # per call, counted on the meta device (1 MAC = 2 FLOPs)
    flops_note: str | None = None  # what the count covers
    tflops_achieved: float | None = None  # flops over the median time
    buffers: int | None = None  # buffer elements (position tables): in the weight bytes, not in params


@dataclass
class BackendRun:
    """Which backend ran the stage, with which options, and how its runner was made."""

    name: str | None = keyed("backend_name", default=None)  # registered name (the id's backend adds the variant)
    options: dict[str, Any] = keyed("backend_options", default_factory=dict)
    artifact: ArtifactRecord | None = record(ArtifactRecord)
    build_s: dict[str, float] | None = None  # component build times
    prepare_s: float | None = None  # the backend's whole prepare call for the stage's modules


@dataclass
class StageResult:
    id: ResultId
    status: str = "ok"  # ok | oom | error | invalid
    message: str | None = None
    conditions: Conditions = field(default_factory=Conditions)
    cost: Cost = field(default_factory=Cost)
    timing: Timing = field(default_factory=Timing)
    memory: Memory = field(default_factory=Memory)
    energy: Energy = field(default_factory=Energy)
    backend: BackendRun = field(default_factory=BackendRun)
    parity: Parity | None = None
    cap: VramCap | None = None  # --vram-cap: the cap, what it counted, and whether the stage fit
    kernels: Kernels | None = None  # the profiled round: busy fraction, time by kernel class, top kernels
    reference: ReferenceWorkload | None = None  # the run's reference workload (the same in every row of a run)
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as they are

    @property
    def stage(self) -> str:
        return self.id.stage

    @property
    def device(self) -> str:
        return self.conditions.device

    @property
    def median(self) -> float | None:
        return self.timing.median

    @property
    def rounds(self) -> list[float]:
        return list(self.timing.rounds_s)

    def standing_peak(self) -> Figure:
        return self.memory.standing_peak(self.device)

    def activations(self) -> Figure:
        return self.memory.activations(self.device)

    @property
    def host_bound(self) -> bool | None:
        return self.kernels.host_bound if self.kernels else None

    @property
    def throttled(self) -> str | None:
        """``throttled: REASONS`` when NVML reported a throttling reason while the row was timed, else None:
        its time is the machine's state as much as the code's (``sdshape.measurement.clocks``)."""
        return self.conditions.throttle.label if self.conditions.throttle else None

    @property
    def rankable(self) -> bool:
        """Measured, and its output matched eager fp32 (or it is eager fp32)."""
        return self.status == "ok" and bool(self.parity and self.parity.ok)

    # -- JSON ----------------------------------------------------------------------------
    def to_extra_info(self) -> dict[str, Any]:
        """The flat ``extra_info`` keys: every section's fields, the row's records, and what is derived."""
        info: dict[str, Any] = {"schema_version": SCHEMA_VERSION, **self.id.as_dict()}
        for section in (self.conditions, self.cost, self.memory, self.energy, self.timing, self.backend):
            info.update(write_flat(section))
        info.update(
            rounds=len(self.timing.rounds_s),
            parity=self.parity.to_json() if self.parity else None,
            vram_cap=self.cap.to_json() if self.cap else None,
            kernels=self.kernels.to_json() if self.kernels else None,
            status=self.status,
            message=self.message,
            id=self.id.as_dict(),
            host_bound=self.host_bound,
        )
        if self.reference is not None:  # rows of runs without one (--no-reference, older files) hold no key
            info["reference"] = self.reference.to_json()
        info.update(self.extra)
        return info

    @classmethod
    def from_extra_info(cls, info: dict[str, Any], stats: dict[str, Any] | None) -> StageResult:
        """Parse ``extra_info`` (and the ``stats`` beside it); missing keys take their defaults.

        The memory figures pass the rules as they are read, so a file written before
        the rules existed holds no impossible figure for its readers either.
        """
        info = upgrade(info)
        rid = ResultId(**{name: info[name] for name in ID_FIELDS})
        device = info.get("device") or _device_guess(info.get("memory") or {})
        rounds = (stats or {}).get("data")
        return cls(
            rid,
            info.get("status") or ("ok" if stats else "error"),
            info.get("message"),
            read_flat(Conditions, info, device=device, methods=info.get("methods") or _methods_of(info)),
            read_flat(Cost, info),
            read_flat(Timing, info, stats=stats, rounds_s=list(rounds) if rounds is not None else []),
            read_flat(Memory, info).checked(device),
            read_flat(Energy, info),
            read_flat(BackendRun, info),
            Parity.from_json(info.get("parity")),
            VramCap.from_json(info.get("vram_cap")),
            Kernels.from_json(info.get("kernels")),
            reference=ReferenceWorkload.from_json(info.get("reference")),
            extra={key: value for key, value in info.items() if key not in KNOWN_KEYS},
        )


# Keys a row holds beside its sections' fields: the id, and what is derived from the row.
ROW_KEYS = {*ID_FIELDS, "schema_version", "rounds", "parity", "vram_cap", "kernels", "status", "message", "id",
            "host_bound", "reference"}  # fmt: skip
KNOWN_KEYS = frozenset(
    ROW_KEYS.union(*(keys_of(section) for section in (Conditions, Cost, Memory, Energy, Timing, BackendRun)))
)


def _methods_of(info: dict[str, Any]) -> dict[str, int]:
    """The method versions of a row written before rows recorded them, told from what it holds."""
    settled = isinstance(info.get("baseline"), dict)  # memory 2 recorded whether the baseline settled
    windowed = isinstance(info.get("energy_method"), dict)  # energy 2 recorded its window
    return {"time": 1, "memory": 2 if settled else 1, "energy": 2 if windowed else 1}


def _device_guess(memory: dict[str, Any]) -> str:
    """The device of a row that does not name one: a GPU row when it holds any GPU reading."""
    return "cuda" if any(key.startswith(("nvml_", "torch_")) for key in memory) else "cpu"
