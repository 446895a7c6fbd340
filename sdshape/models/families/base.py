"""What a denoiser family declares: everything that differs between a UNet, a DiT and an MMDiT pipeline.

A family is the call contract of one kind of denoiser, written the way its diffusers pipeline runs it:
how the text encoders' outputs condition it, how it is guided, which scheduler steps it, how its latents
are laid out and packed, where its weights live in a pipeline folder, and what ONNX Runtime should
call it. The measurement core (``measure``, ``session``, ``campaign``, ``StageRecorder``) runs the
stage objects that ``wiring`` makes from these methods, and never asks which family it is measuring.

Adding a family is a folder under ``sdshape/models/families/`` (a torch-free ``zoo.py`` with its components
and shapes, a ``family.py`` with a :class:`Family` subclass) and one line in the registry,
``sdshape/models/families/__init__.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from sdshape.models.specs import ComponentSpec
from sdshape.models.text_kinds import T5, kind_of

Guidance = Literal["cfg", "distilled", "none"]
Specs = dict[str, ComponentSpec]


@dataclass(frozen=True)
class Sizes:
    """The sizes one run calls its stages at: per prompt batch, before guidance doubles anything."""

    batch: int
    resolution: int
    sequence_length: int  # tokens of the text stream the shape names (T5's where there is one)
    guidance: Guidance
    guidance_scale: float

    @property
    def rows(self) -> int:
        """Rows the text encoders and the denoiser see: CFG encodes the negative prompt and doubles the batch."""
        return 2 * self.batch if self.guidance == "cfg" else self.batch


class Conditioning:
    """The denoiser's conditioning inputs, by name, in its call order (after ``sample`` and ``timestep``)."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.tensors = dict(tensors)

    def args(self) -> tuple[torch.Tensor, ...]:
        return tuple(self.tensors.values())

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def get(self, name: str) -> torch.Tensor | None:
        return self.tensors.get(name)

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Conditioning:
        """On ``device``; floating tensors in ``dtype`` (masks and ids keep theirs)."""
        return Conditioning(
            {
                name: t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device=device)
                for name, t in self.tensors.items()
            }
        )

    def on_host(self) -> Conditioning:
        return Conditioning({name: t.detach().cpu() for name, t in self.tensors.items()})


def is_t5(spec: ComponentSpec) -> bool:
    return kind_of(spec) is T5


def text_parts(spec: ComponentSpec) -> tuple[ComponentSpec, ...]:
    return spec.parts if spec.is_stack else (spec,)


def stream_of_parts(spec: ComponentSpec) -> list[int]:
    """Which token stream each text encoder reads: encoders of one kind share one (CLIP towers: 77 tokens,
    their position table), each kind reads its own, as pipelines tokenize them with separate tokenizers."""
    parts = text_parts(spec)
    kinds = [kind_of(part).name for part in parts]
    order = list(dict.fromkeys(kinds))
    return [order.index(kind) for kind in kinds]


def stream_lengths(spec: ComponentSpec, sequence_length: int) -> list[int]:
    """Tokens per stream: a stream with a position table beside one without (CLIP beside T5) is padded to
    its table's length, as SD3 and FLUX do; otherwise every stream reads the shape's sequence length."""
    parts = text_parts(spec)
    lengths: dict[int, int] = {}
    mixed = len(set(stream_of_parts(spec))) > 1
    for part, stream in zip(parts, stream_of_parts(spec), strict=True):
        limit = kind_of(part).length_limit(part)
        lengths[stream] = limit if (mixed and limit) else sequence_length
    return [lengths[index] for index in sorted(lengths)]


def encode(
    encoder: nn.Module, ids: torch.Tensor, layer: str = "last", mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One text encoder's chosen hidden state and its pooled output (None for T5, which has none).

    CLIP: ``pooled`` is ``text_embeds`` for a tower with projection, else ``pooler_output``.
    """
    penultimate = layer == "penultimate"
    kwargs: dict[str, Any] = {"output_hidden_states": penultimate, "return_dict": True}
    if mask is not None:
        kwargs["attention_mask"] = mask
    output = encoder(ids, **kwargs)
    hidden = output.hidden_states[-2] if penultimate else output.last_hidden_state
    pooled = getattr(output, "text_embeds", None)
    if pooled is None:
        pooled = getattr(output, "pooler_output", None)
    return hidden, pooled


class StageModule(nn.Module):
    """What every stage module declares for the backends that run it (plain tensors in and out).

    ``returns_tuple``: the output is a tuple, whose structure a backend's runner keeps. What a backend
    calls a graph (ONNX Runtime's optimizer model type, say) is the backend's own map, not declared here."""

    returns_tuple: ClassVar[bool] = False


class TextEncoders(StageModule):
    """A pipeline's text encoders, each on its token stream; a family's subclass combines their outputs.

    ``forward(input_ids, input_ids_2=None)``: named parameters, since ONNX export names the graph's
    inputs after them.
    """

    returns_tuple = True  # backends keep the tuple structure of the outputs

    def __init__(self, encoders: list[nn.Module], spec: ComponentSpec):
        super().__init__()
        self.encoders = nn.ModuleList(encoders)
        self.streams = stream_of_parts(spec)
        self.part_specs = text_parts(spec)

    def inputs(self, input_ids: torch.Tensor, input_ids_2: torch.Tensor | None) -> list[torch.Tensor]:
        given = [input_ids, input_ids_2]
        return [given[stream] for stream in self.streams]  # type: ignore[misc]


def halves(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A CFG-doubled tensor as (negative rows, prompt rows)."""
    half = tensor.shape[0] // 2
    return tensor[:half], tensor[half:]


def reference_latents(
    family: Family, modules: dict[str, nn.Module], loop: Any, steps: int, guidance_scale: float, resolution: int
) -> torch.Tensor:
    """diffusers' pipeline call on the same components, embeddings, initial noise and steps, with
    ``output_type="latent"``: what the loop must reproduce (tests) and be as fast as (the benchmark)."""
    pipe = family.diffusers_pipeline(modules, family.make_scheduler(dict(loop.scheduler.config)))
    pipe.set_progress_bar_config(disable=True)
    noise = loop.latents / getattr(loop.scheduler, "init_noise_sigma", 1.0)  # the pipeline scales it itself
    return pipe(
        **family.pipeline_inputs(loop.conditioning),
        latents=noise,
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        height=resolution,
        width=resolution,
        output_type="latent",
    ).images


class Family:
    """What every family declares (name, classes, folders, scheduler), and the behaviour most share: CFG by
    batch doubling, the VAE's latent layout. No family's layout is a default: each declares its own."""

    name: str = ""
    description: str = ""
    denoiser_classes: tuple[str, ...] = ()
    # diffusers pipeline folder layout: where each component's config and weights are.
    weights_folders: ClassVar[dict[str, tuple[str, ...]]]
    scheduler_class: ClassVar[str]  # the diffusers scheduler class its pipeline steps with
    onnx_notes = ""  # what export and TensorRT need to know about this denoiser (shown by `sdshape zoo --json`)

    # -- guidance ------------------------------------------------------------------------------
    def guidance(self, denoiser: ComponentSpec) -> Guidance:
        """CFG by batch doubling, unless the family says otherwise."""
        return "cfg"

    # -- modules -------------------------------------------------------------------------------
    def text_module(self, encoders: list[nn.Module], spec: ComponentSpec) -> nn.Module:
        raise NotImplementedError

    def step_module(self, model: nn.Module, spec: ComponentSpec) -> nn.Module:
        """One denoiser evaluation: ``forward(sample, timestep, *conditioning)`` -> a prediction shaped like
        ``sample``."""
        raise NotImplementedError

    # -- conditioning --------------------------------------------------------------------------
    def conditioning(self, text_outputs: tuple[torch.Tensor, ...], specs: Specs, sizes: Sizes) -> Conditioning:
        """The denoiser's conditioning from the text stage's outputs (rows already as guidance needs)."""
        raise NotImplementedError

    def conditioning_shapes(self, specs: Specs, sizes: Sizes) -> dict[str, tuple[int, ...]]:
        """The same, by shape alone: for FLOP counting on the meta device, export and engine profiles."""
        raise NotImplementedError

    def text_output_width(self, spec: ComponentSpec) -> int:
        """The width of the hidden states the denoiser attends to."""
        raise NotImplementedError

    # -- latents -------------------------------------------------------------------------------
    def vae_latent_shape(self, specs: Specs, batch: int, resolution: int) -> tuple[int, ...]:
        side = resolution // vae_scale_factor(specs["vae"])
        return (batch, int(specs["vae"].config.get("latent_channels", 4)), side, side)

    def latent_shape(self, specs: Specs, batch: int, resolution: int) -> tuple[int, ...]:
        """The latents the loop holds and the denoiser reads (one guidance half): the VAE's by default."""
        return self.vae_latent_shape(specs, batch, resolution)

    def denoiser_latent_channels(self, denoiser: ComponentSpec) -> int:
        """The VAE latent channels this denoiser takes (before any packing)."""
        return int(denoiser.config.get("in_channels", 4))

    def to_vae_latents(self, latents: torch.Tensor, specs: Specs, resolution: int) -> torch.Tensor:
        """The loop's final latents as the VAE decodes them (FLUX unpacks its 2x2 patches here)."""
        return latents

    # -- scheduler -----------------------------------------------------------------------------
    def make_scheduler(self, config: dict[str, Any]) -> Any:
        import diffusers

        config = {key: value for key, value in config.items() if key != "_class_name"}
        return getattr(diffusers, self.scheduler_class).from_config(config)

    def set_timesteps(self, scheduler: Any, steps: int, device: torch.device, latents_shape: tuple[int, ...]) -> None:
        scheduler.set_timesteps(steps, device=device)

    def model_input(self, scheduler: Any, latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return scheduler.scale_model_input(latents, t)

    def scheduler_step(self, scheduler: Any, prediction: torch.Tensor, t: torch.Tensor, latents: torch.Tensor) -> Any:
        return scheduler.step(prediction, t, latents, return_dict=False)[0]

    # -- the reference: diffusers' own pipeline on the same components --------------------------
    def diffusers_pipeline(self, modules: dict[str, nn.Module], scheduler: Any) -> Any:
        """The diffusers pipeline this family's loop follows, built on the stage modules' own models (no
        tokenizers: it is called with embeddings)."""
        raise NotImplementedError

    def pipeline_inputs(self, conditioning: Conditioning) -> dict[str, Any]:
        """The pipeline's embedding arguments for this conditioning (CFG: the negative half first)."""
        raise NotImplementedError

    # -- compositions --------------------------------------------------------------------------
    def upcasts_vae(self, vae: ComponentSpec) -> bool:
        """Whether this family's pipeline decodes in fp32 when the run is fp16. Only SDXL's pipeline reads
        the VAE's ``force_upcast``; the SD3, FLUX and PixArt pipelines decode in the run's dtype."""
        return False

    def adapt(self, denoiser: ComponentSpec, text: ComponentSpec) -> tuple[ComponentSpec, str | None]:
        """The denoiser rebuilt to take this text encoder's outputs, and what changed (None: nothing).

        Raises :class:`~sdshape.core.errors.UsageError` when no adaptation can make them fit.
        """
        raise NotImplementedError


def vae_scale_factor(spec: ComponentSpec) -> int:
    """Pixels per latent along a side: AutoencoderKL halves per level; AutoencoderTiny likewise."""
    levels = spec.config.get("block_out_channels") or spec.config.get("decoder_block_out_channels")
    return 2 ** (len(levels) - 1)


def largest_resolution(denoiser: ComponentSpec, vae: ComponentSpec) -> int | None:
    """The largest image side the denoiser's learned position table holds (SD3's ``pos_embed_max_size``
    patches of ``patch_size`` latents), or None where positions are computed (UNets, PixArt, FLUX's RoPE)."""
    table = denoiser.config.get("pos_embed_max_size")
    if not table:
        return None
    return int(table) * int(denoiser.config.get("patch_size") or 1) * vae_scale_factor(vae)


def width(spec: ComponentSpec) -> int:
    """Hidden width of one text encoder (CLIP: hidden_size, T5: d_model), where its kind keeps it."""
    return kind_of(spec).width(spec)


def pooled_width(spec: ComponentSpec) -> int | None:
    """Width of one encoder's pooled output as :func:`encode` returns it (T5 and decoder LLMs have none)."""
    if not kind_of(spec).pooled:
        return None
    return spec.config["projection_dim"] if spec.library_class.endswith("WithProjection") else width(spec)
