"""One measurement session: sampler first, then the build, then stages on demand.

Order matters and is the point of this module: the sampler's baseline is taken
before anything touches the GPU (so the CUDA context shows up in the NVML
peaks), components are built next, allocator peaks are reset after loading,
and each stage's window covers its timed rounds only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from backends import get_backend
from backends.base import Runner
from sdshape import build, environment
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
from sdshape.zoo import get_shape

STAGE_KINDS = {"text_encoder": "text_encoder", "unet_loop": "unet", "vae_decode": "vae"}


def _times(value: int | None, factor: int) -> int | None:
    return None if value is None else value * factor


def _sum_or_none(values: list[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(values)  # type: ignore[arg-type]


@dataclass
class StageFacts:
    """Static facts of a stage: what it is, before any timing."""

    params: int
    params_executed: int
    weight_bytes: int
    flops: int | None  # per stage call (the loop: all steps); None if it cannot be traced
    calls: int  # module calls per stage call


@dataclass
class Session:
    plan: Plan
    backend: str
    progress: Any = None
    sampler: Sampler = field(init=False)
    environment: dict = field(default_factory=dict)
    built: BuiltShape | None = None
    build_error: Outcome | None = None
    shapes: CallShapes | None = None
    facts: dict[str, StageFacts] = field(default_factory=dict)
    stages: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    prepare_s: float = 0.0

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

    @property
    def dtype(self) -> torch.dtype:
        return build.DTYPES[self.plan.precision]

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
        plan = self.plan
        task = self._task("building components", total=3)
        try:
            self.environment = environment.fingerprint(plan.device, self.nvml, self.nvml_reason)
            if plan.weights is not None:
                built = build.load_weights(plan.weights, plan.device, self.dtype, on_component=self._stepper(task))
            else:
                built = build.build_shape(
                    get_shape(plan.shape), plan.device, self.dtype, plan.seed, self._stepper(task)
                )
            self.built = built
            self._prepare(built)
        except Exception as error:
            from sdshape.errors import UsageError

            if isinstance(error, UsageError):
                raise
            status, message = classify_failure(error)
            self.build_error = Outcome("build", status, f"build failed: {message}", "none")
        finally:
            self._advance(task, completed=3, description="components built")

    def _stepper(self, task: Any):
        def on_component(kind: str, spec: Any) -> None:
            if self.progress is not None and task is not None:
                done = ["text_encoder", "unet", "vae"].index(kind)
                self.progress.update(task, completed=done, description=f"building {kind}: {spec.name}")

        return on_component

    def _prepare(self, built: BuiltShape) -> None:
        plan = self.plan
        device, dtype = plan.device, self.dtype
        seq_len = 77
        self.shapes = shapes = call_shapes(built.specs, plan.batch, plan.resolution, seq_len)
        per_call = flops_per_call(built.specs, shapes, strict=False)
        backend = get_backend(self.backend)

        ids = token_ids(shapes.text_encoder["input_ids"][0], seq_len, vocab_size(built.specs["text_encoder"]), device)
        runners: dict[str, Runner] = {}
        start = time.perf_counter()
        runners["text_encoder"] = backend.prepare(built.text_encoder, (ids,), plan.precision, device, None)
        with torch.inference_mode():
            conditioning = Conditioning.from_text(built.text_encoder(ids), plan.resolution, dtype)
        text = TextEncoderStage(runners["text_encoder"], ids)
        loop_example = (
            torch.zeros(shapes.unet["sample"], device=device, dtype=dtype),
            torch.tensor(999.0, device=device),
            *conditioning.unet_args(),
        )
        runners["unet"] = backend.prepare(built.unet, loop_example, plan.precision, device, None)
        loop = UNetLoopStage(
            runners["unet"],
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
        vae.runner = backend.prepare(built.vae, (vae.latents,), plan.precision, device, None)
        self.prepare_s = time.perf_counter() - start
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

    # -- measure ----------------------------------------------------------------------
    def recorder(self, stage: str) -> StageRecorder:
        return StageRecorder(
            self.stages[stage], self.plan.device, self.sampler, self.plan.warmup, per_step=stage == "unet_loop"
        )

    def measure(self, stage: str) -> Outcome:
        """Measure one stage with the session's own round loop (CUDA events on the GPU)."""
        if self.build_error is not None:
            outcome = Outcome(stage, self.build_error.status, self.build_error.message, "none")
        else:
            plan = self.plan
            task = self._task(f"{stage}: warm-up {plan.warmup} + {plan.rounds} rounds", total=plan.warmup + plan.rounds)
            with torch.inference_mode():
                outcome = self.recorder(stage).run_all(plan.rounds, on_round=lambda: self._advance(task, advance=1))
            self._advance(task, description=f"{stage}: {outcome.status}")
        self.outcomes[stage] = outcome
        return outcome

    def measure_all(self) -> list[Outcome]:
        return [self.measure(stage) for stage in STAGES]
