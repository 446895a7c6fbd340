"""One measurement session: sampler first, then the build, then stages on demand; and the campaign.

Order matters and is the point of this module: the sampler's baseline is taken
before any model is loaded, and only once the previous session's memory is back
down (otherwise peaks come out too small, or negative, as on the first GPU run);
components are built next, backends prepare their runners (compile, export,
engine build; timed apart), allocator peaks are reset after loading, and each
stage's window covers its timed rounds only. The CUDA context is created once,
before the first baseline, and reported on its own.

Every backend gets the same inputs: token ids and latents from the seed, and
the UNet's conditioning from the eager fp32 reference when there is one, so
parity compares backends, not the text encoder's rounding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from sdshape import build, energy, environment, parity
from sdshape.backends import artifact_of, get_backend
from sdshape.backends.base import Artifact, Runner
from sdshape.backends.cache import ArtifactSlot
from sdshape.build import BuiltShape, count_params, weight_bytes
from sdshape.call_inputs import CallShapes, call_shapes, vocab_size
from sdshape.flops import flops_per_call
from sdshape.measure import Outcome, StageRecorder, classify_failure, release_memory
from sdshape.nvml import reading_source
from sdshape.plan import Plan
from sdshape.sampling import Sampler, Settled, settle
from sdshape.stages import (
    Conditioning,
    PipelineStage,
    TextEncoderStage,
    UNetLoopStage,
    VAEDecodeStage,
    token_ids,
)
from sdshape.vocabulary import KIND_OF_STAGE, STAGES, precision
from sdshape.zoo import ComponentSpec, get_shape


def _times(value: int | None, factor: int) -> int | None:
    return None if value is None else value * factor


def _sum_or_none(values: list[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(values)  # type: ignore[arg-type]


def config_hash(spec: ComponentSpec) -> str:
    """A hash of everything that defines a component's architecture (not its weights)."""
    described = {"class": spec.library_class, "config": spec.config, "parts": [config_hash(p) for p in spec.parts]}
    described["hidden_layer"], described["pooled"] = spec.hidden_layer, spec.pooled
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class StageFacts:
    """Static facts of a stage: what it is, before any timing."""

    params: int
    params_executed: int
    weight_bytes: int
    flops: int | None  # per stage call (the loop: all steps); None if it cannot be traced
    calls: int  # module calls per stage call


@dataclass
class Reference:
    """Eager fp32 outputs of every stage on the shared inputs, plus the fp32 conditioning.

    Everything is kept on the host: the reference must not hold device memory while the
    sessions it checks are measured.
    """

    outputs: dict[str, torch.Tensor]
    conditioning: Conditioning

    def conditioning_for(self, dtype: torch.dtype, device: torch.device) -> Conditioning:
        c = self.conditioning
        tensors = (c.encoder_hidden_states, c.text_embeds, c.time_ids)
        return Conditioning(*[None if t is None else t.to(device=device, dtype=dtype) for t in tensors])  # type: ignore[arg-type]


def on_host(conditioning: Conditioning) -> Conditioning:
    tensors = (conditioning.encoder_hidden_states, conditioning.text_embeds, conditioning.time_ids)
    return Conditioning(*[None if t is None else t.detach().cpu() for t in tensors])  # type: ignore[arg-type]


# Memory may stay this far above the level before the previous session (library state such as
# cuBLAS/cuDNN workspaces and loaded kernels, Python modules): at least 256 MiB, or half the
# previous session's weights, so a model left resident is always caught.
MIN_SLACK_BYTES = 256 << 20


SETTLE_TIMEOUT_S = 3.0


def slack_after(previous_weights: int) -> int:
    return max(MIN_SLACK_BYTES, previous_weights // 2)


@dataclass
class Session:
    plan: Plan
    backend: str  # the label, e.g. "compile:reduce-overhead"
    progress: Any = None
    reference: Reference | None = None
    # Set by the campaign: the memory level before the previous session loaded, and what it held.
    previous_level: dict[str, Any] | None = None
    previous_weights: int = 0
    cuda_context_bytes: int | None = None
    counter_period_s: float | None = None
    sampler: Sampler = field(init=False)
    settled: Settled | None = None
    environment: dict = field(default_factory=dict)
    built: BuiltShape | None = None
    build_error: Outcome | None = None
    shapes: CallShapes | None = None
    facts: dict[str, StageFacts] = field(default_factory=dict)
    stages: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    runners: dict[str, Runner] = field(default_factory=dict)
    prepare_s: float = 0.0
    resident_weights_bytes: int | None = None
    vram_cap: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.source, self.nvml, self.nvml_reason = reading_source(self.plan.device)
        self.sampler = Sampler(self.source, interval_s=self.plan.sample_interval_s)

    def __enter__(self) -> Session:
        # Import the model libraries first: the baseline should exclude Python
        # modules (hundreds of MB of host RSS) and include no model at all.
        import diffusers  # noqa: F401
        import transformers  # noqa: F401
        from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: F401
        from transformers import CLIPTextModel  # noqa: F401

        device = self.plan.device
        self.settled = settle(
            self.source,
            self.previous_level,
            slack_after(self.previous_weights),
            lambda: release_memory(device),
            on_gpu=device.type == "cuda",
            timeout_s=SETTLE_TIMEOUT_S,
        )
        self.sampler.start(baseline=self.settled.reading)
        return self

    def __exit__(self, *exc: object) -> None:
        self.sampler.stop()
        self.close()

    @property
    def dtype(self) -> torch.dtype:
        return precision(self.plan.precision).dtype()

    @property
    def backend_name(self) -> str:
        return self.plan.backend(self.backend)[0]

    @property
    def backend_options(self) -> dict[str, Any]:
        """The plan's options for this backend; under --vram-cap, with this session's memory budget."""
        options = dict(self.plan.backend(self.backend)[1])
        if self.vram_cap:
            options["memory_budget_bytes"] = self.vram_cap["torch_budget_bytes"]
        return options

    def _task(self, description: str, total: int | None = None):
        if self.progress is None:
            return None
        return self.progress.add_task(description, total=total)

    def _advance(self, task: Any, **kwargs: Any) -> None:
        if self.progress is not None and task is not None:
            self.progress.update(task, **kwargs)

    # -- build ------------------------------------------------------------------------
    def build(self) -> None:
        """Build (or load) the components and prepare the stages; a failure becomes every stage's row."""
        from sdshape.errors import UsageError

        plan = self.plan
        task = self._task(f"{self.backend}: building components", total=3)
        try:
            self.environment = environment.fingerprint(plan.device, self.nvml, self.nvml_reason)
            self._apply_vram_cap()
            if plan.weights is not None:
                built = build.load_weights(plan.weights, plan.device, self.dtype, on_component=self._stepper(task))
            else:
                shape = plan.shape_spec or get_shape(plan.shape)
                built = build.build_shape(shape, plan.device, self.dtype, plan.seed, self._stepper(task))
            self.built = built
            self._advance(task, completed=3, description=f"{self.backend}: components built")
            self._prepare(built)
        except UsageError:
            raise
        except Exception as error:
            status, message = classify_failure(error)
            self.build_error = Outcome("build", status, f"build failed: {message}", "none")
            self._advance(task, description=f"{self.backend}: build failed: {message}")

    def _apply_vram_cap(self) -> None:
        """Emulate a smaller card: torch (and ORT's arena) get the cap minus what this process already holds.

        The CUDA context exists by now (the campaign creates it before any baseline);
        what the process holds (NVML's reading for it, else the device's used memory)
        is taken off the cap, so "fits an 8 GiB card" includes the context, as on a
        real 8 GiB card.
        """
        cap = self.plan.vram_cap_bytes
        if not cap or self.plan.device.type != "cuda":
            return
        index = cuda_index(self.plan.device)
        free, total = torch.cuda.mem_get_info(index)
        held = self.sampler.read_now().get("nvml_process_bytes") or (total - free)
        budget = max(cap - held, 0)
        fraction = min(budget / total, 1.0)
        # torch wants an indexed device here: torch.device("cuda") alone is refused.
        torch.cuda.set_per_process_memory_fraction(fraction, index)
        self.vram_cap = {
            "cap_bytes": cap,
            "cuda_context_bytes": self.cuda_context_bytes,
            "held_before_bytes": held,
            "torch_budget_bytes": budget,
            "torch_fraction": fraction,
            "device_total_bytes": total,
            "policy": "all three components resident (the session holds them all)",
        }

    def _stepper(self, task: Any):
        def on_component(kind: str, spec: Any) -> None:
            done = ["text_encoder", "unet", "vae"].index(kind)
            self._advance(task, completed=done, description=f"{self.backend}: building {kind} ({spec.name})")

        return on_component

    def _slot(self, kind: str, spec: ComponentSpec, inputs: tuple[torch.Tensor, ...]) -> ArtifactSlot:
        env = self.environment
        identity = {
            "component": config_hash(spec),
            "stage_module": kind,
            "inputs": [[list(t.shape), str(t.dtype)] for t in inputs],
            "precision": self.plan.precision,
            "device": self.plan.device.type,
            "gpu": env.get("gpu_name"),
            "driver": env.get("driver_version"),
            "cuda": env.get("cuda_runtime_version"),
            "torch": torch.__version__,
        }
        return ArtifactSlot(self.plan.cache_dir, identity)

    def _prepare_runner(self, backend: Any, kind: str, module: Any, inputs: tuple[torch.Tensor, ...]) -> Runner:
        task = self._task(f"{self.backend}: preparing {kind}")
        slot = self._slot(kind, self.built.specs[kind], inputs)  # type: ignore[union-attr]
        start = time.perf_counter()
        runner = backend.prepare(module, inputs, self.plan.precision, self.plan.device, slot)
        prepare_s = time.perf_counter() - start
        artifact = artifact_of(runner)
        if not hasattr(runner, "artifact") and self.backend_name != "eager":
            artifact.build_s = prepare_s  # a backend that reports nothing: its whole prepare is its build
        artifact.prepare_s = prepare_s
        self.artifacts[kind] = artifact
        self.runners[kind] = runner
        self.prepare_s += artifact.prepare_s
        self._advance(task, description=f"{self.backend}: {kind} {artifact.cache} ({artifact.build_s:.1f} s)")
        return runner

    def _prepare(self, built: BuiltShape) -> None:
        plan = self.plan
        device, dtype = plan.device, self.dtype
        seq_len = plan.sequence_length
        self.shapes = shapes = call_shapes(built.specs, plan.batch, plan.resolution, seq_len)
        per_call = flops_per_call(built.specs, shapes, strict=False)
        backend = get_backend(self.backend_name, self.backend_options)

        rows = shapes.text_encoder["input_ids"][0]
        ids = token_ids(rows, seq_len, vocab_size(built.specs["text_encoder"]), device)
        if self.reference is not None:
            conditioning = self.reference.conditioning_for(dtype, device)
        else:
            with torch.inference_mode():
                conditioning = Conditioning.from_text(built.text_encoder(ids), plan.resolution, dtype)
        text = TextEncoderStage(self._prepare_runner(backend, "text_encoder", built.text_encoder, (ids,)), ids)
        generator = torch.Generator().manual_seed(plan.seed + 2)
        unet_example = (
            torch.randn(shapes.unet["sample"], generator=generator).to(device=device, dtype=dtype),
            torch.tensor(999.0, device=device),
            *conditioning.unet_args(),
        )
        unet_runner = self._prepare_runner(backend, "unet", built.unet, unet_example)
        loop = UNetLoopStage(
            unet_runner,
            built.scheduler_config,
            conditioning,
            shapes,
            plan.steps,
            plan.guidance,
            device,
            dtype,
            plan.seed,
        )
        vae = VAEDecodeStage(None, shapes, device, dtype, plan.seed)  # type: ignore[arg-type]
        vae.runner = self._prepare_runner(backend, "vae", built.vae, (vae.latents,))
        self.stages = {
            "text_encoder": text,
            "unet_loop": loop,
            "vae_decode": vae,
            "pipeline": PipelineStage(text, loop, vae, plan.resolution, dtype),
        }
        modules = {"text_encoder": built.text_encoder, "unet_loop": built.unet, "vae_decode": built.vae}
        calls = {"text_encoder": 1, "unet_loop": plan.steps, "vae_decode": 1}
        for stage, module in modules.items():
            executed = module.executed_params if stage == "vae_decode" else count_params(module)
            self.facts[stage] = StageFacts(
                params=count_params(module),
                params_executed=executed,
                weight_bytes=weight_bytes(module),
                flops=_times(per_call[KIND_OF_STAGE[stage]], calls[stage]),
                calls=calls[stage],
            )
        self.resident_weights_bytes = sum(weight_bytes(module) for module in built.modules.values())
        self.facts["pipeline"] = StageFacts(
            params=sum(f.params for f in self.facts.values()),
            params_executed=sum(f.params_executed for f in self.facts.values()),
            weight_bytes=sum(f.weight_bytes for f in self.facts.values()),
            flops=_sum_or_none([f.flops for f in self.facts.values()]),
            calls=1,
        )

    def close(self) -> None:
        """Drop everything that can hold memory: models, runners, stage inputs, outputs, the reference.

        The campaign collects and releases memory after this, and reads the next
        session's baseline only once memory is back down (``sampling.settle``).
        """
        for runner in self.runners.values():
            close = getattr(runner, "close", None)
            if callable(close):
                close()
        self.runners.clear()
        self.stages.clear()
        self.built = None
        self.reference = None
        for outcome in self.outcomes.values():
            outcome.output = None

    # -- measure ----------------------------------------------------------------------
    @property
    def is_reference(self) -> bool:
        return self.backend_name == "eager" and self.plan.precision == "fp32"

    def measure_energy(self, recorder: StageRecorder, outcome: Outcome) -> None:
        """Joules per call over a window the counter resolves; without NVML, None with the reason."""
        if outcome.status != "ok" or self.nvml is None:
            return  # without NVML the row's energy_note gives the reason
        with torch.inference_mode():
            outcome.energy = recorder.energy_window(self.counter_period_s)

    def recorder(self, stage: str) -> StageRecorder:
        return StageRecorder(
            self.stages[stage], self.plan.device, self.sampler, self.plan.warmup, per_step=stage == "unet_loop"
        )

    def check_parity(self, outcome: Outcome) -> None:
        """Compare the last timed round's output with the reference; over tolerance means invalid."""
        if outcome.status != "ok" or not self.plan.parity:
            return
        if self.is_reference:
            outcome.parity = parity.self_reference()
        elif self.reference is not None and outcome.stage in self.reference.outputs:
            outcome.parity = parity.compare(outcome.output, self.reference.outputs[outcome.stage], self.plan.precision)
            if not outcome.parity["ok"]:
                outcome.status = "invalid"
                outcome.message = parity.failure_message(outcome.parity)

    def measure(self, stage: str) -> Outcome:
        """Measure one stage with the session's own round loop (CUDA events on the GPU)."""
        if self.build_error is not None:
            outcome = Outcome(stage, self.build_error.status, self.build_error.message, "none")
        else:
            plan = self.plan
            task = self._task(
                f"{self.backend}: {stage}: warm-up {plan.warmup} + {plan.rounds} rounds",
                total=plan.warmup + plan.rounds,
            )
            recorder = self.recorder(stage)
            with torch.inference_mode():
                outcome = recorder.run_all(plan.rounds, on_round=lambda: self._advance(task, advance=1))
            self.check_parity(outcome)
            self.measure_energy(recorder, outcome)
            self._advance(task, description=f"{self.backend}: {stage}: {outcome.status}")
        self.outcomes[stage] = outcome
        return outcome

    def measure_all(self) -> list[Outcome]:
        return [self.measure(stage) for stage in STAGES]

    def as_reference(self) -> Reference | None:
        """This session's outputs as the reference (eager fp32 sessions only, all stages ok), on the host."""
        if not self.is_reference or any(
            self.outcomes.get(s) is None or self.outcomes[s].output is None for s in STAGES
        ):
            return None
        outputs = {s: parity.flatten(self.outcomes[s].output) for s in STAGES}
        return Reference(outputs, on_host(self.stages["unet_loop"].conditioning))

    def reference_outputs(self, task: Any = None) -> Reference | None:
        """One untimed run of each stage; outputs and conditioning copied to the host."""
        outputs: dict[str, torch.Tensor] = {}
        try:
            with torch.inference_mode():
                for stage in STAGES:
                    outputs[stage] = parity.flatten(self.stages[stage].run())
                    self._advance(task, advance=1)
        except Exception as error:
            self._advance(task, description=f"reference failed: {classify_failure(error)[1]}")
            return None
        return Reference(outputs, on_host(self.stages["unet_loop"].conditioning))


def cuda_index(device: torch.device) -> int:
    """The CUDA device index torch calls need (``torch.device("cuda")`` alone names none)."""
    return device.index if device.index is not None else torch.cuda.current_device()


def create_cuda_context(device: torch.device, source: Any) -> int | None:
    """Create the CUDA context now, before any session's baseline, and return its size as NVML sees it.

    Every session's baseline then includes the context, so no session's peak does
    and all of them compare alike; the context is reported on its own
    (``memory.cuda_context_bytes``), and the feasibility model and ``--vram-cap``
    add it back, as a real card must hold it.
    """
    before = source.read().get("nvml_process_bytes") or 0
    probe = torch.empty(1, device=device)
    torch.cuda.synchronize(device)
    after = source.read().get("nvml_process_bytes")
    reserved = torch.cuda.memory_reserved(device)
    del probe
    torch.cuda.empty_cache()
    return None if after is None else max(0, after - before - reserved)


class Campaign:
    """Backends measured in turn, one resident at a time, each session's baseline read clean.

    The one place that decides lifetimes, for ``sdshape run``, ``pytest bench/`` and
    the explorer: the parity reference (eager fp32 in the run, else one untimed
    eager fp32 run first, kept on the host), then each backend's session, closed and
    its memory released before the next one's baseline is read (``open``).
    """

    def __init__(self, plan: Plan, progress: Any = None):
        self.plan = plan
        self.progress = progress
        self.reference: Reference | None = None
        self._level: dict[str, Any] | None = None
        self._weights = 0
        self._context: int | None = None
        self._period: float | None = None
        self._started = False

    @property
    def labels(self) -> list[str]:
        """The plan's backends, eager first (eager fp32 is the reference when it is in the run)."""
        return sorted(self.plan.backends, key=lambda label: self.plan.backend(label)[0] != "eager")

    @property
    def reference_in_run(self) -> bool:
        return self.plan.precision == "fp32" and "eager" in self.plan.backends

    def _start(self) -> None:
        """Once per campaign, before any baseline: the CUDA context and the energy counter's period."""
        if self._started:
            return
        self._started = True
        device = self.plan.device
        if device.type != "cuda":
            return
        source, nvml, _ = reading_source(device)
        self._context = create_cuda_context(device, source)
        if nvml is not None:
            self._period = energy.counter_period(source.energy_mj)

    def open(self, label: str, reference: Reference | None = None, plan: Plan | None = None) -> Session:
        """A new session for ``label``, entered: its baseline is read once memory is back down."""
        self._start()
        session = Session(
            plan or self.plan,
            label,
            progress=self.progress,
            reference=reference,
            previous_level=self._level,
            previous_weights=self._weights,
            cuda_context_bytes=self._context,
            counter_period_s=self._period,
        )
        return session.__enter__()

    def close(self, session: Session) -> None:
        """Close a session; the next ``open`` releases its memory and checks that it went."""
        self._level = session.sampler.baseline
        self._weights = session.resident_weights_bytes or 0
        session.__exit__(None, None, None)

    def compute_reference(self) -> Reference | None:
        """Eager fp32 outputs of each stage on the shared inputs (one untimed run each), on the host.

        Returns None when the reference cannot be built (parity then reads as not checked).
        """
        reference_plan = dataclasses.replace(
            self.plan,
            precision="fp32",
            backends=["eager"],
            backend_specs={"eager": ("eager", {})},
            vram_cap_bytes=None,  # the reference runs uncapped, before any cap is set
        )
        session = self.open("eager", plan=reference_plan)
        try:
            session.build()
            if session.build_error is not None:
                return None
            task = session._task("reference: eager fp32 outputs for parity", total=len(STAGES))
            return session.reference_outputs(task)
        finally:
            self.close(session)

    def run(self, on_session: Any = None) -> None:
        """Measure every backend of the plan in turn, with parity against eager fp32."""
        plan = self.plan
        if plan.parity and not self.reference_in_run:
            self.reference = self.compute_reference()
        for label in self.labels:
            session = self.open(label, self.reference)
            try:
                session.build()
                session.measure_all()
                if self.reference is None and plan.parity:
                    self.reference = session.as_reference()
                if on_session is not None:
                    on_session(session)
            finally:
                self.close(session)


def run_backends(plan: Plan, progress: Any = None, on_session: Any = None) -> None:
    """Measure every backend of the plan in turn (see :class:`Campaign`)."""
    Campaign(plan, progress).run(on_session)
