"""A built shape wired into the four measured stages, and each stage's static facts.

The same inputs for every backend: token ids and latents from the seed, and the
denoiser's conditioning from the eager fp32 reference when there is one (so parity
compares backends, not the text encoder's rounding). Each stage module goes
through ``make_runner`` (the backend's ``prepare``) exactly once. What differs
between model families (the text streams, the conditioning, the latent layout)
comes from the shape's family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from sdshape.backends.base import Runner
from sdshape.core.vocabulary import KIND_OF_STAGE, calls_per_image
from sdshape.models.build import BuiltShape, count_buffers, count_params, weight_bytes
from sdshape.models.call_inputs import CallShapes
from sdshape.models.families.base import Conditioning, stream_lengths, stream_of_parts, text_parts
from sdshape.models.mapped_weights import weight_files_in
from sdshape.models.stages import (
    DenoiseLoopStage,
    PipelineStage,
    TextEncoderStage,
    VAEDecodeStage,
    WiredStage,
    token_ids,
)

MakeRunner = Callable[[str, torch.nn.Module, tuple[torch.Tensor, ...]], Runner]


@dataclass
class StageFacts:
    """Static facts of a stage: what it is, before any timing."""

    params: int
    params_executed: int
    weight_bytes: int
    flops: int | None  # per stage call (the loop: all steps); None if it cannot be traced
    calls: int  # module calls per stage call
    buffers: int = 0  # buffer elements held beside the parameters (in weight_bytes, not in params)


def text_inputs(built: BuiltShape, shapes: CallShapes, device: torch.device) -> tuple[torch.Tensor, ...]:
    """One ids tensor per token stream (CLIP's, T5's), each from its own tokenizer's vocabulary."""
    spec = built.specs["text_encoder"]
    parts = text_parts(spec)
    lengths = stream_lengths(spec, shapes.sequence_length)
    streams = stream_of_parts(spec)
    ids = []
    for index, length in enumerate(lengths):
        vocab = min(part.config["vocab_size"] for part, s in zip(parts, streams, strict=True) if s == index)
        ids.append(token_ids(shapes.sizes.rows, length, vocab, device, negative=shapes.guidance == "cfg"))
    return tuple(ids)


def text_conditioning(
    built: BuiltShape, ids: tuple[torch.Tensor, ...], shapes: CallShapes, dtype: torch.dtype
) -> Conditioning:
    """The denoiser's conditioning from this session's own text encoder (when there is no reference)."""
    with torch.inference_mode():
        outputs = built.text_encoder(*ids)
    return built.family.conditioning(outputs, built.specs, shapes.sizes).to(ids[0].device, dtype)


def wire(
    built: BuiltShape,
    shapes: CallShapes,
    dtype: torch.dtype,
    conditioning: Conditioning | None,
    make_runner: MakeRunner,
    *,
    device: torch.device,
    steps: int,
    seed: int,
) -> dict[str, WiredStage]:
    """The four stage objects, each module prepared by the backend on the shared example inputs."""
    ids = text_inputs(built, shapes, device)
    if conditioning is None:
        conditioning = text_conditioning(built, ids, shapes, dtype)
    text = TextEncoderStage(make_runner("text_encoder", built.text_encoder, ids), ids)
    loop = DenoiseLoopStage(
        None,  # type: ignore[arg-type]
        built.family,
        built.specs,
        built.scheduler_config,
        conditioning,
        shapes,
        steps,
        device,
        dtype,
        seed,
    )
    generator = torch.Generator().manual_seed(seed + 2)
    example = (
        torch.randn(shapes.denoiser["sample"], generator=generator).to(device=device, dtype=dtype),
        loop.example_timestep(),
        *conditioning.args(),
    )
    loop.runner = make_runner("denoiser", built.denoiser, example)
    vae_dtype = next(built.vae.parameters()).dtype  # fp32 where the pipeline upcasts the VAE
    vae = VAEDecodeStage(None, shapes, device, vae_dtype, seed)
    vae.runner = make_runner("vae", built.vae, (vae.latents,))
    return {
        "text_encoder": text,
        "denoise_loop": loop,
        "vae_decode": vae,
        "pipeline": PipelineStage(text, loop, vae, dtype),
    }


def stage_facts(built: BuiltShape, flops_per_call: dict[str, int | None], steps: int) -> dict[str, StageFacts]:
    """Parameters, weight bytes and FLOPs of each stage; the pipeline sums the three."""
    facts: dict[str, StageFacts] = {}
    for stage, kind in KIND_OF_STAGE.items():
        module = built.modules[kind]  # type: ignore[index]
        calls = calls_per_image(kind, steps)
        per_call = flops_per_call[kind]
        facts[stage] = StageFacts(
            params=count_params(module),
            params_executed=module.executed_params if kind == "vae" else count_params(module),
            weight_bytes=weight_bytes(module),
            flops=None if per_call is None else per_call * calls,
            calls=calls,
            buffers=count_buffers(module),
        )
    parts = list(facts.values())
    flops = [f.flops for f in parts]
    facts["pipeline"] = StageFacts(
        params=sum(f.params for f in parts),
        params_executed=sum(f.params_executed for f in parts),
        weight_bytes=sum(f.weight_bytes for f in parts),
        flops=None if any(f is None for f in flops) else sum(flops),  # type: ignore[arg-type]
        calls=1,
        buffers=sum(f.buffers for f in parts),
    )
    return facts


def resident_weight_bytes(built: BuiltShape) -> int:
    """What every stage of the session runs with: all three components' weights."""
    return sum(weight_bytes(module) for module in built.modules.values())


def resident_weights(built: BuiltShape, keeps_module: bool, artifacts: dict[str, Any]) -> tuple[int, list[str]]:
    """The weights every stage runs with, and the files they are memory-mapped from.

    A backend that keeps the torch modules runs on them (mapped from safetensors when loaded with
    ``--weights``). One whose runners hold their own copy (ONNX Runtime, TensorRT) is charged for that
    copy, not for torch's as well (the session sends the torch modules to the meta device).
    """
    if keeps_module:
        return resident_weight_bytes(built), weight_files_in(built.weights) if built.weights != "random" else []
    held = sum(a.weight_bytes or 0 for a in artifacts.values())
    return held, [path for a in artifacts.values() for path in a.weight_files]
