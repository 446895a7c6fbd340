"""The typed result of one stage: what a session returns, what files hold, what every reader parses.

A :class:`StageResult` is written as one pytest-benchmark ``benchmarks`` item
(``extra_info`` keeps its flat keys, ``stats`` the raw rounds) and read back
into the same classes, so ``run``, ``compare``, ``history``, ``report``, the
feasibility model and the explorer all see one shape. Keys a reader does not
know are kept in ``extra`` and written back unchanged. Like
optimum-benchmark's ``BenchmarkReport``: typed records that round-trip to JSON.

:meth:`Memory.standing_peak` is the one place that decides which memory figure
stands for a stage.

Length: over 300 lines because the JSON mapping (``to_extra_info`` and
``from_extra_info``) stays beside the fields it maps, so a field cannot be added
to one without the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from sdshape.core.vocabulary import ID_FIELDS
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


@dataclass
class Memory:
    """The memory readings of a stage (``extra_info["memory"]``) and what is known to be wrong with them."""

    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # why figures are null (``memory_error``)
    baseline: dict[str, Any] | None = None  # did memory settle before the baseline was read

    def get(self, key: str) -> Any:
        return self.figures.get(key)

    def checked(self, device: str) -> Memory:
        """These readings with every figure that breaks a rule (``sdshape.result.rules``) set to None."""
        resident = self.figures.get("resident_weights_bytes") or self.figures.get("weights_bytes")
        figures, error = check_memory(self.figures, resident, device)
        if error is None:
            return self
        joined = f"{self.error}; {error}" if self.error else error
        return Memory(figures, self.notes, joined, self.baseline)

    def _first(self, order: dict[str, tuple], device: str) -> Figure:
        choices = order.get(device, order["cpu"])
        for key, label in choices:
            if self.figures.get(key) is not None:
                return Figure(self.figures[key], label, key)
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

    rounds_s: list[float] = field(default_factory=list)
    timer: str | None = None
    warmup_rounds: int | None = None
    stats: dict[str, Any] | None = None  # pytest-benchmark's statistics; ``data`` holds the rounds
    step_times: dict[str, Any] | None = None  # the UNet loop's per-step times
    time_share: float | None = None
    residual: dict[str, Any] | None = None  # the pipeline against the sum of its stages
    stopping: dict[str, Any] | None = None  # how the rounds ended: fixed count, stable CI, or a cap
    device_timer: str | None = None  # pytest bench/: the device-side clock beside pytest's own
    device_rounds_s: list[float] | None = None

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
    joules_per_call: float | None = None
    method: dict[str, Any] | None = None  # how it was measured (``sdshape.measurement.energy``)
    note: str | None = None  # why it is None
    share: float | None = None
    power_w_mean: float | None = None


@dataclass
class Conditions:
    """What the stage ran under, besides its id."""

    device: str = "cpu"
    device_name: str | None = None
    guidance_scale: float | None = None
    cfg: bool | None = None
    sequence_length: int | None = None
    family: str | None = None  # the denoiser's model family (unet, pixart, sd3, flux)
    guidance: str | None = None  # cfg (batch doubled), distilled (a guidance input), none
    vae_precision: str | None = None  # where the VAE ran in another precision (SDXL's force_upcast: fp32)
    composition_notes: list[str] = field(default_factory=list)
    seed: int | None = None
    weights: str | None = None
    components: dict[str, str] | None = None
    sm_clock_mhz: dict[str, float] | None = None
    throttle: dict[str, Any] | None = None
    sampler: dict[str, Any] | None = None


@dataclass
class Cost:
    """Static cost of the stage's component(s): parameters and FLOPs."""

    params: int | None = None
    param_share: float | None = None
    params_executed: int | None = None
    flops: int | None = None
    flops_note: str | None = None
    tflops_achieved: float | None = None
    buffers: int | None = None  # buffer elements (position tables): in the weight bytes, not in params


@dataclass
class BackendRun:
    """Which backend ran the stage, with which options, and how its runner was made."""

    name: str | None = None  # the registered backend (the id's ``backend`` is the label with its variant)
    options: dict[str, Any] = field(default_factory=dict)
    artifact: dict[str, Any] | None = None
    build_s: dict[str, float] | None = None  # component build times
    prepare_s: float | None = None


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
    parity: dict[str, Any] | None = None
    cap: dict[str, Any] | None = None  # --vram-cap: the cap, what it counted, and whether the stage fit
    kernels: dict[str, Any] | None = None  # the profiled round: busy fraction, time by kernel class, top kernels
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
        return (self.kernels or {}).get("host_bound")

    @property
    def rankable(self) -> bool:
        """Measured, and its output matched eager fp32 (or it is eager fp32)."""
        return self.status == "ok" and bool((self.parity or {}).get("ok"))

    # -- JSON ----------------------------------------------------------------------------
    def to_extra_info(self) -> dict[str, Any]:
        c, cost, t, m, e, b = self.conditions, self.cost, self.timing, self.memory, self.energy, self.backend
        info: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            **self.id.as_dict(),
            "device": c.device,
            "device_name": c.device_name,
            "guidance_scale": c.guidance_scale,
            "cfg": c.cfg,
            "sequence_length": c.sequence_length,
            "family": c.family,
            "guidance": c.guidance,
            "vae_precision": c.vae_precision,
            "composition_notes": c.composition_notes,
            "seed": c.seed,
            "weights": c.weights,
            "components": c.components,
            "params": cost.params,
            "param_share": cost.param_share,
            "params_executed": cost.params_executed,
            "flops": cost.flops,
            "flops_note": cost.flops_note,
            "tflops_achieved": cost.tflops_achieved,
            "buffers": cost.buffers,
            "memory": m.figures,
            "memory_notes": m.notes,
            "memory_error": m.error,
            "baseline": m.baseline,
            "energy_j": e.joules_per_call,
            "energy_method": e.method,
            "energy_note": e.note,
            "power_w_mean": e.power_w_mean,
            "sm_clock_mhz": c.sm_clock_mhz,
            "throttle": c.throttle,
            "sampler": c.sampler,
            "timer": t.timer,
            "rounds": len(t.rounds_s),
            "warmup_rounds": t.warmup_rounds,
            "step_times": t.step_times,
            "backend_name": b.name,
            "backend_options": b.options,
            "artifact": b.artifact,
            "parity": self.parity,
            "vram_cap": self.cap,
            "status": self.status,
            "message": self.message,
            "build_s": b.build_s,
            "prepare_s": b.prepare_s,
            "id": self.id.as_dict(),
            "time_share": t.time_share,
            "energy_share": e.share,
            "stopping": t.stopping,
            "kernels": self.kernels,
            "host_bound": self.host_bound,
        }
        if t.residual is not None:
            info["residual"] = t.residual
        if t.device_timer is not None:
            info["device_timer"], info["device_rounds_s"] = t.device_timer, t.device_rounds_s
        info.update(self.extra)
        return info

    @classmethod
    def from_extra_info(cls, info: dict[str, Any], stats: dict[str, Any] | None) -> StageResult:
        """Parse ``extra_info`` (and the ``stats`` beside it); missing keys take their defaults.

        The memory figures pass the rules as they are read, so a file written before
        the rules existed holds no impossible figure for its readers either.
        """
        info = upgrade(info)
        get = info.get
        rid = ResultId(**{name: info[name] for name in ID_FIELDS})
        device = get("device") or _device_guess(get("memory") or {})
        conditions = Conditions(
            device=device,
            device_name=get("device_name"),
            guidance_scale=get("guidance_scale"),
            cfg=get("cfg"),
            sequence_length=get("sequence_length"),
            family=get("family"),
            guidance=get("guidance"),
            vae_precision=get("vae_precision"),
            composition_notes=list(get("composition_notes") or []),
            seed=get("seed"),
            weights=get("weights"),
            components=get("components"),
            sm_clock_mhz=get("sm_clock_mhz"),
            throttle=get("throttle"),
            sampler=get("sampler"),
        )
        cost = Cost(
            get("params"), get("param_share"), get("params_executed"), get("flops"), get("flops_note"),
            get("tflops_achieved"), get("buffers"),
        )  # fmt: skip
        rounds = (stats or {}).get("data")
        rounds = rounds if rounds is not None else []
        timing = Timing(
            rounds_s=rounds,
            timer=get("timer"),
            warmup_rounds=get("warmup_rounds"),
            stats=stats,
            step_times=get("step_times"),
            time_share=get("time_share"),
            residual=get("residual"),
            device_timer=get("device_timer"),
            device_rounds_s=get("device_rounds_s"),
            stopping=get("stopping"),
        )
        memory = Memory(
            dict(get("memory") or {}), list(get("memory_notes") or []), get("memory_error"), get("baseline")
        ).checked(device)
        energy = Energy(get("energy_j"), get("energy_method"), get("energy_note"), get("energy_share"))
        energy.power_w_mean = get("power_w_mean")
        backend = BackendRun(
            get("backend_name"), dict(get("backend_options") or {}), get("artifact"), get("build_s"), get("prepare_s")
        )
        status = get("status") or ("ok" if stats else "error")
        extra = {key: value for key, value in info.items() if key not in KNOWN_KEYS}
        return cls(
            rid, status, get("message"), conditions, cost, timing, memory, energy, backend, get("parity"),
            get("vram_cap"), get("kernels"), extra,
        )  # fmt: skip


KNOWN_KEYS = frozenset(
    {
        *ID_FIELDS,
        *(f.name for f in fields(Conditions)),
        *(f.name for f in fields(Cost)),
        "memory", "memory_notes", "memory_error", "baseline",
        "energy_j", "energy_method", "energy_note", "energy_share", "power_w_mean",
        "timer", "rounds", "warmup_rounds", "step_times", "time_share", "residual", "device_timer", "device_rounds_s",
        "backend_name", "backend_options", "artifact", "build_s", "prepare_s",
        "parity", "vram_cap", "status", "message", "id", "stopping", "kernels", "host_bound", "schema_version",
    }
)  # fmt: skip


def _device_guess(memory: dict[str, Any]) -> str:
    """The device of a row that does not name one: a GPU row when it holds any GPU reading."""
    return "cuda" if any(key.startswith(("nvml_", "torch_")) for key in memory) else "cpu"
