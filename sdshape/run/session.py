"""One measurement session: a clean baseline, then the build, then stages on demand, each a MeasuredStage.

Order matters and is the point of this module: the sampler's baseline is taken
before any model is loaded, and only once the previous session's memory is back
down (``sdshape.measurement.memory.settle``; otherwise peaks come out too small, or negative, as
on the first GPU run); components are built next, backends prepare their runners
(compile, export, engine build; timed apart), allocator peaks are reset after
loading, and each stage's window covers its timed rounds only. Lifetimes across
sessions (which session runs when, the parity reference) are the campaign's
(``sdshape.run.campaign``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from sdshape.backends import get_backend
from sdshape.backends.base import Artifact
from sdshape.config.plan import Plan
from sdshape.core.vocabulary import DEFAULT_POLICY, KINDS, STAGE_OF_KIND, STAGES, precision
from sdshape.measurement import environment, parity
from sdshape.measurement.energy import EnergyReading
from sdshape.measurement.measure import Outcome, StageRecorder, classify_failure, release_memory
from sdshape.measurement.memory import SETTLE_TIMEOUT_S, Settled, apply_vram_cap, settle, slack_after
from sdshape.measurement.nvml import clock_settings, reading_source
from sdshape.measurement.sampling import BackgroundSampler
from sdshape.models import build, weights_folder
from sdshape.models.call_inputs import call_shapes
from sdshape.models.flops import flops_per_call
from sdshape.models.mapped_weights import unpaged_bytes
from sdshape.models.specs import ComponentKind, ComponentSpec
from sdshape.models.stages import WiredStage
from sdshape.models.wiring import StageFacts, resident_weights, stage_facts, wire
from sdshape.models.zoo import get_shape
from sdshape.result.document import stats_dict
from sdshape.result.records import Kernels, Parity, VramCap
from sdshape.run import residency
from sdshape.run.measured import MeasuredStage, SessionContext
from sdshape.run.progress import ProgressDisplay, TaskID
from sdshape.run.reference import Reference, on_host
from sdshape.run.runners import Runners, reused_broken


@dataclass(frozen=True)
class Handover:
    """What the campaign hands a new session: the memory level before the previous session loaded and the
    weights it held (the baseline waits for memory to come back to that level), the CUDA context's size, and
    the energy counter's update period (both measured once per campaign)."""

    previous_level: dict[str, float | int | None] | None = None
    previous_weights: int = 0
    cuda_context_bytes: int | None = None
    counter_period_s: float | None = None


@dataclass
class Session:
    plan: Plan
    backend: str  # the label, e.g. "compile:reduce-overhead"
    progress: ProgressDisplay | None = None
    reference: Reference | None = None
    handover: Handover = field(default_factory=Handover)  # what the campaign knows before this session
    sampler: BackgroundSampler = field(init=False)
    settled: Settled | None = None
    environment: dict = field(default_factory=dict)
    built: build.BuiltShape | None = None
    build_error: Outcome | None = None
    facts: dict[str, StageFacts] = field(default_factory=dict)
    stages: dict[str, WiredStage] = field(default_factory=dict)
    reference_outputs: dict[str, torch.Tensor] = field(default_factory=dict)  # eager fp32 only, on the host
    runners: Runners | None = None
    resident_weights_bytes: int | None = None
    # Files the resident weights are memory-mapped from (ONNX Runtime's external data, safetensors loaded
    # with --weights): only their touched pages are in memory (``sdshape.models.mapped_weights``).
    mapped_weight_files: list[str] = field(default_factory=list)
    torch_reserved_at_baseline: int | None = None  # what torch's allocator held when the baseline was read
    vram_cap: VramCap | None = None
    residency: residency.Residency | None = None

    def __post_init__(self) -> None:
        self.source, self.nvml, self.nvml_reason = reading_source(self.plan.device)
        self.sampler = BackgroundSampler(self.source, interval_s=self.plan.options.sample_interval_s)

    def __enter__(self) -> Session:
        # Import the model libraries first: the baseline should exclude Python
        # modules (hundreds of MB of host RSS) and include no model at all.
        import diffusers  # noqa: F401
        import transformers  # noqa: F401

        if self.plan.weights is None:
            build.import_classes(self.plan.shape_spec or get_shape(self.plan.options.shape))

        device = self.plan.device
        self.settled = settle(
            self.source,
            self.handover.previous_level,
            slack_after(self.handover.previous_weights),
            lambda: release_memory(device),
            on_gpu=device.type == "cuda",
            timeout_s=SETTLE_TIMEOUT_S,
        )
        self.sampler.start(baseline=self.settled.reading)
        if device.type == "cuda":
            self.torch_reserved_at_baseline = torch.cuda.memory_reserved(device)
        return self

    def __exit__(self, *exc: object) -> None:
        self.sampler.stop()
        self.close()

    @property
    def dtype(self) -> torch.dtype:
        return precision(self.plan.options.precision).dtype()

    @property
    def backend_name(self) -> str:
        return self.plan.backend(self.backend)[0]

    @property
    def backend_options(self) -> dict[str, Any]:
        """The plan's options for this backend; under --vram-cap, with this session's memory budget."""
        options = dict(self.plan.backend(self.backend)[1])
        if self.vram_cap:
            options["memory_budget_bytes"] = self.vram_cap.torch_budget_bytes
        return options

    @property
    def is_reference(self) -> bool:
        """Plain eager in fp32, all resident: the output every backend's (and every policy's) parity is checked
        against."""
        plain = not any(self.plan.backend(self.backend)[1].values())
        resident = self.plan.options.policy == DEFAULT_POLICY  # a policy must not change the numbers: checked
        return self.backend_name == "eager" and plain and self.plan.options.precision == "fp32" and resident

    def _task(self, description: str, total: int | None = None) -> TaskID | None:
        return None if self.progress is None else self.progress.add_task(description, total=total)

    def _advance(self, task: TaskID | None, **kwargs: Any) -> None:
        if self.progress is not None and task is not None:
            self.progress.update(task, **kwargs)

    # -- build ------------------------------------------------------------------------
    def build(self) -> None:
        """Build (or load) the components and prepare the stages; a failure becomes every stage's row."""
        from sdshape.core.errors import UsageError

        plan = self.plan
        task = self._task(f"{self.backend}: building components", total=3)
        try:
            self.environment = environment.fingerprint(plan.device, self.nvml, self.nvml_reason)
            if plan.vram_cap_bytes and plan.device.type == "cuda":
                reading = self.sampler.read_now()
                self.vram_cap = apply_vram_cap(
                    plan.vram_cap_bytes, plan.device, reading, self.handover.cuda_context_bytes
                )
            announce = self._announcer(task)
            vae_dtype = precision(plan.precision_of("vae")).dtype()  # fp32 where the pipeline upcasts the VAE
            storage = precision(plan.options.precision).storage
            if plan.weights is not None:
                built = weights_folder.load_weights(plan.weights, plan.device, self.dtype, announce, vae_dtype, storage)
            else:
                shape = plan.shape_spec or get_shape(plan.options.shape)
                built = build.build_shape(
                    shape, plan.device, self.dtype, plan.options.seed, announce, vae_dtype, storage
                )
            self.built = built
            self._advance(task, completed=3, description=f"{self.backend}: components built")
            self.residency = residency.apply(built.modules, plan.device, plan.options)
            self._prepare(built)
        except UsageError:
            raise
        except Exception as error:
            status, message = classify_failure(error)
            self.build_error = Outcome("build", status, f"build failed: {message}", "none")
            self._advance(task, description=f"{self.backend}: build failed: {message}")

    def _announcer(self, task: TaskID | None) -> Callable[[ComponentKind, ComponentSpec], None]:
        def on_component(kind: ComponentKind, spec: ComponentSpec) -> None:
            done = KINDS.index(kind)
            self._advance(task, completed=done, description=f"{self.backend}: building {kind} ({spec.name})")

        return on_component

    def _prepare(self, built: build.BuiltShape) -> None:
        plan = self.plan
        shapes = call_shapes(
            built.specs, plan.options.batch, plan.options.resolution, plan.options.sequence_length, plan.guidance
        )
        backend = get_backend(self.backend_name, self.backend_options)
        conditioning = self.reference.conditioning_for(self.dtype, plan.device) if self.reference else None
        self.runners = Runners(
            backend, self.backend, plan, built.specs, self.environment, self.backend_name == "eager", self.progress
        )
        self.stages = wire(
            built, shapes, self.dtype, conditioning, self.runners.prepare,
            device=plan.device, steps=plan.options.steps, seed=plan.options.seed,
        )  # fmt: skip
        self.facts = stage_facts(built, flops_per_call(built.specs, shapes, strict=False), plan.options.steps)
        keeps = backend.keeps_module
        if not keeps:  # the runners hold their own copy of the weights: torch's goes
            for module in built.modules.values():
                module.to("meta")
        self.resident_weights_bytes, self.mapped_weight_files = resident_weights(built, keeps, self.artifacts)
        if self.residency is not None:  # offloaded weights live on the host: a GPU peak's floor is what stays
            self.resident_weights_bytes = self.residency.floor(built.modules, plan.device, self.resident_weights_bytes)
            self.residency.attach(self.stages)

    def close(self) -> None:
        """Drop everything that can hold memory: models, runners, stage inputs, the reference.

        The campaign collects and releases memory after this, and reads the next
        session's baseline only once memory is back down (``sdshape.measurement.memory.settle``).
        """
        if self.runners is not None:
            self.runners.close()
        self.stages.clear()
        self.built = None
        self.reference = None

    # -- measure ----------------------------------------------------------------------
    def recorder(self, stage: str) -> StageRecorder:
        return StageRecorder(
            self.stages[stage],
            self.plan.device,
            self.sampler,
            self.plan.options.warmup,
            per_step=stage == "denoise_loop",
        )

    def measure(self, stage: str) -> MeasuredStage:
        """Measure one stage with the session's own round loop (CUDA events on the GPU)."""
        if self.build_error is not None:
            return self.record(Outcome(stage, self.build_error.status, self.build_error.message, "none"))
        plan = self.plan
        stopping = plan.stopping
        rounds = plan.rounds if plan.rounds is not None else plan.options.max_rounds
        task = self._task(
            f"{self.backend}: {stage}: warm-up {plan.options.warmup} + {stopping.describe()}", total=rounds
        )
        recorder = self.recorder(stage)
        with torch.inference_mode():
            outcome = recorder.run_all(stopping, on_round=lambda: self._advance(task, advance=1))
        measured = self.record(outcome, recorder)
        reused = reused_broken(measured, self.artifacts)
        if reused and self.runners is not None:
            # A cached artifact whose output holds NaN or Inf is corrupt, whatever its checksum said:
            # drop it, build it again, measure the stage again, once.
            why = "the cached entry's output held NaN/Inf against the reference: dropped and rebuilt"
            for kind, runner in self.runners.rebuild(reused, why).items():
                self.stages[STAGE_OF_KIND[kind]].runner = runner
            recorder = self.recorder(stage)
            with torch.inference_mode():
                outcome = recorder.run_all(stopping)
            measured = self.record(outcome, recorder)
        self._advance(task, description=f"{self.backend}: {stage}: {measured.status}")
        return measured

    @property
    def artifacts(self) -> dict[str, Artifact]:
        return self.runners.artifacts if self.runners is not None else {}

    @property
    def prepare_s(self) -> float:
        return self.runners.prepare_s if self.runners is not None else 0.0

    def measure_all(self) -> list[MeasuredStage]:
        return [self.measure(stage) for stage in STAGES]

    def context(self) -> SessionContext:
        """The session as it stands now, as a value (read again at each record: a rebuild changes artifacts)."""
        return SessionContext(
            backend_label=self.backend,
            backend_name=self.backend_name,
            backend_options=self.backend_options,
            environment=dict(self.environment),
            nvml_reason=self.nvml_reason,
            nvml_available=self.nvml is not None,
            clock_settings=clock_settings(self.nvml) if self.nvml is not None else {},
            sampler_interval_s=self.sampler.interval_s,
            built=self.built,
            facts=dict(self.facts),
            artifacts=dict(self.artifacts),
            prepare_s=self.prepare_s,
            resident_weights_bytes=self.resident_weights_bytes,
            cuda_context_bytes=self.handover.cuda_context_bytes,
            torch_reserved_at_baseline=self.torch_reserved_at_baseline,
            baseline=self.settled.record() if self.settled is not None else None,
            vram_cap=self.vram_cap,
        )

    def record(
        self,
        outcome: Outcome,
        recorder: StageRecorder | None = None,
        stats: dict[str, Any] | None = None,
        timer: str | None = None,
    ) -> MeasuredStage:
        """Parity, energy, the profiled round and the session's context of a measured stage, as a value;
        its output is not kept (only an eager fp32 session keeps it, on the host, as the reference).

        ``stats`` and ``timer``: the rounds' statistics and timer when another harness timed them
        (pytest-benchmark); by default, those of the recorder's own rounds.
        """
        status, message = outcome.status, outcome.message
        checked = self._parity(outcome)
        if checked is not None and not checked.ok:
            status, message = "invalid", parity.failure_message(checked)
        kernels: Kernels | None = None
        if status == "ok" and self.plan.options.profile and recorder is not None:
            kernels = recorder.profiled()
        energy = self._energy(recorder, status)
        if self.is_reference and outcome.output is not None:
            self.reference_outputs[outcome.stage] = parity.flatten(outcome.output)
        if stats is None and outcome.rounds_s:
            stats = stats_dict(outcome.rounds_s)
        unpaged = None
        if self.plan.device.type == "cpu" and self.mapped_weight_files:
            # read just after the window closed: the pages the stage touched are in by now
            unpaged = unpaged_bytes(self.mapped_weight_files)
        outcome.output = None  # the value handed on holds no tensor
        return MeasuredStage(
            self.context(), outcome, status, message, checked, energy, stats, kernels, unpaged, timer
        )  # fmt: skip

    def _parity(self, outcome: Outcome) -> Parity | None:
        """The last timed round's output against the reference (None: not checked)."""
        if outcome.status != "ok" or not self.plan.options.parity:
            return None
        if self.is_reference:
            return parity.self_reference()
        if self.reference is not None and outcome.stage in self.reference.outputs:
            return parity.compare(outcome.output, self.reference.outputs[outcome.stage], self.plan.options.precision)
        return None

    def _energy(self, recorder: StageRecorder | None, status: str) -> EnergyReading | None:
        """Joules per call over a window the counter resolves; None without NVML (the row says why)."""
        if status != "ok" or self.nvml is None or recorder is None:
            return None
        with torch.inference_mode():
            return recorder.energy_window(self.handover.counter_period_s)

    def as_reference(self) -> Reference | None:
        """This session's outputs as the reference (eager fp32 sessions only, all stages ok), on the host."""
        if not self.is_reference or any(stage not in self.reference_outputs for stage in STAGES):
            return None
        return Reference(dict(self.reference_outputs), on_host(self.stages["denoise_loop"].conditioning))
