"""One measurement session: sampler first, then the build, then stages on demand.

Order matters and is the point of this module: the sampler's baseline is taken
before anything touches the GPU (so the CUDA context shows up in the NVML
peaks), components are built next, backends prepare their runners (compile,
export, engine build; timed apart), allocator peaks are reset after loading,
and each stage's window covers its timed rounds only.

Every backend gets the same inputs: token ids and latents from the seed, and
the UNet's conditioning from the eager fp32 reference when there is one, so
parity compares backends, not the text encoder's rounding.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from backends import artifact_of, get_backend
from backends.base import Artifact, BackendOptions, Runner
from backends.cache import ArtifactSlot
from sdshape import build, environment, parity
from sdshape.build import BuiltShape, count_params, weight_bytes
from sdshape.flops import flops_per_call
from sdshape.measure import Outcome, StageRecorder, classify_failure
from sdshape.nvml import NvmlSource, open_device
from sdshape.options import STAGES, Plan
from sdshape.sampling import CombinedSource, HostSource, Sampler
from sdshape.shapes import CallShapes, call_shapes, vocab_size
from sdshape.stages import (
    Conditioning,
    PipelineStage,
    TextEncoderStage,
    UNetLoopStage,
    VAEDecodeStage,
    token_ids,
)
from sdshape.zoo import ComponentSpec, get_shape

STAGE_KINDS = {"text_encoder": "text_encoder", "unet_loop": "unet", "vae_decode": "vae"}


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
    """Eager fp32 outputs of every stage on the shared inputs, plus the fp32 conditioning."""

    outputs: dict[str, torch.Tensor]
    conditioning: Conditioning

    def conditioning_for(self, dtype: torch.dtype) -> Conditioning:
        c = self.conditioning
        cast = [None if t is None else t.to(dtype) for t in (c.encoder_hidden_states, c.text_embeds, c.time_ids)]
        return Conditioning(*cast)  # type: ignore[arg-type]


@dataclass
class Session:
    plan: Plan
    backend: str  # the label, e.g. "compile:reduce-overhead"
    progress: Any = None
    reference: Reference | None = None
    sampler: Sampler = field(init=False)
    environment: dict = field(default_factory=dict)
    built: BuiltShape | None = None
    build_error: Outcome | None = None
    shapes: CallShapes | None = None
    facts: dict[str, StageFacts] = field(default_factory=dict)
    stages: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    prepare_s: float = 0.0
    vram_cap: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        nvml, reason = open_device(self.plan.device)
        sources = [HostSource()] if nvml is None else [NvmlSource(nvml), HostSource()]
        self.nvml, self.nvml_reason = nvml, reason
        self.sampler = Sampler(CombinedSource(*sources), interval_s=self.plan.sample_interval_s)

    def __enter__(self) -> Session:
        # Import the model libraries first: the baseline should exclude Python
        # modules (hundreds of MB of host RSS) and include no model at all.
        import diffusers  # noqa: F401
        import transformers  # noqa: F401
        from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: F401
        from transformers import CLIPTextModel  # noqa: F401

        self.sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sampler.stop()
        self.release()

    @property
    def dtype(self) -> torch.dtype:
        return build.DTYPES[self.plan.precision]

    @property
    def backend_name(self) -> str:
        return self.plan.backend(self.backend)[0]

    @property
    def backend_options(self) -> BackendOptions:
        """The plan's options for this backend; under --vram-cap, with this session's memory budget."""
        options = self.plan.backend(self.backend)[1]
        if self.vram_cap:
            return dataclasses.replace(options, gpu_mem_limit=self.vram_cap["torch_budget_bytes"])
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

        The CUDA context is created first; its size (NVML's reading for this
        process, else the device's used memory) is taken off the cap, so "fits an
        8 GiB card" includes the context, as on a real 8 GiB card.
        """
        cap = self.plan.vram_cap_bytes
        if not cap or self.plan.device.type != "cuda":
            return
        device = self.plan.device
        torch.cuda.init()
        free, total = torch.cuda.mem_get_info(device)
        held = self.sampler.read_now().get("nvml_process_bytes") or (total - free)
        budget = max(cap - held, 0)
        fraction = min(budget / total, 1.0)
        torch.cuda.set_per_process_memory_fraction(fraction, device)
        self.vram_cap = {
            "cap_bytes": cap,
            "held_before_bytes": held,
            "torch_budget_bytes": budget,
            "torch_fraction": fraction,
            "device_total_bytes": total,
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
            conditioning = self.reference.conditioning_for(dtype)
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
                flops=_times(per_call[STAGE_KINDS[stage]], calls[stage]),
                calls=calls[stage],
            )
        self.facts["pipeline"] = StageFacts(
            params=sum(f.params for f in self.facts.values()),
            params_executed=sum(f.params_executed for f in self.facts.values()),
            weight_bytes=sum(f.weight_bytes for f in self.facts.values()),
            flops=_sum_or_none([f.flops for f in self.facts.values()]),
            calls=1,
        )

    def release(self) -> None:
        """Drop models and runners so the next session's build has the memory."""
        self.stages.clear()
        self.built = None
        gc.collect()
        if self.plan.device.type == "cuda":
            torch.cuda.empty_cache()

    # -- measure ----------------------------------------------------------------------
    @property
    def is_reference(self) -> bool:
        return self.backend_name == "eager" and self.plan.precision == "fp32"

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
            with torch.inference_mode():
                outcome = self.recorder(stage).run_all(plan.rounds, on_round=lambda: self._advance(task, advance=1))
            self.check_parity(outcome)
            self._advance(task, description=f"{self.backend}: {stage}: {outcome.status}")
        self.outcomes[stage] = outcome
        return outcome

    def measure_all(self) -> list[Outcome]:
        return [self.measure(stage) for stage in STAGES]

    def as_reference(self) -> Reference | None:
        """This session's outputs as the reference (eager fp32 sessions only, all stages ok)."""
        if not self.is_reference or any(
            self.outcomes.get(s) is None or self.outcomes[s].output is None for s in STAGES
        ):
            return None
        loop: UNetLoopStage = self.stages["unet_loop"]
        return Reference({s: parity.flatten(self.outcomes[s].output) for s in STAGES}, loop.conditioning)


def compute_reference(plan: Plan, progress: Any = None) -> Reference | None:
    """Eager fp32 outputs of each stage on the shared inputs (one untimed run each), then free the models.

    Returns None when the reference cannot be built (parity then reads as not checked).
    """
    reference_plan = dataclasses.replace(
        plan,
        precision="fp32",
        backends=["eager"],
        backend_specs={"eager": ("eager", BackendOptions())},
        vram_cap_bytes=None,  # the reference runs uncapped, before any cap is set
    )
    with Session(reference_plan, "eager", progress=progress) as session:
        session.build()
        if session.build_error is not None:
            return None
        task = session._task("reference: eager fp32 outputs for parity", total=len(STAGES))
        outputs: dict[str, torch.Tensor] = {}
        try:
            with torch.inference_mode():
                for stage in STAGES:
                    outputs[stage] = parity.flatten(session.stages[stage].run())
                    session._advance(task, advance=1)
        except Exception as error:
            session._advance(task, description=f"reference failed: {classify_failure(error)[1]}")
            return None
        loop: UNetLoopStage = session.stages["unet_loop"]
        return Reference(outputs, loop.conditioning)


def run_backends(plan: Plan, progress: Any = None, on_session: Any = None) -> list[Session]:
    """Measure every backend of the plan in turn, with parity against eager fp32.

    Eager fp32, when asked for, runs first and is the reference; otherwise the
    reference is computed once up front (when parity is on). Each session is
    released before the next is built.
    """
    labels = sorted(plan.backends, key=lambda label: plan.backend(label)[0] != "eager")
    reference: Reference | None = None
    reference_in_run = plan.precision == "fp32" and "eager" in plan.backends
    if plan.parity and not reference_in_run:
        reference = compute_reference(plan, progress)
    sessions = []
    for label in labels:
        with Session(plan, label, progress=progress, reference=reference) as session:
            session.build()
            session.measure_all()
            if reference is None and plan.parity:
                reference = session.as_reference()
            if on_session is not None:
                on_session(session)
            for outcome in session.outcomes.values():
                outcome.output = None  # compared and reported; do not hold device memory
        sessions.append(session)
    return sessions
