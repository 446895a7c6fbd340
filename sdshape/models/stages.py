"""The four measured stages, built on backend runners.

Each stage holds fixed inputs made once from a seed, and ``run(mark)`` does one
round. ``mark`` (from :class:`sdshape.measurement.measure.Clock`) is called after each
denoising step, so the loop reports per-step times, first step included.
The loop is the one every diffusers text-to-image pipeline runs: a real
scheduler built from the model's config, the guidance its family uses (CFG
by batch doubling, a distilled guidance input, or none) and
``scheduler.step``; what differs between families (inputs, packing, timestep
schedules) comes from the family (``sdshape.models.families``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from sdshape.backends.base import Runner
from sdshape.models.call_inputs import CallShapes
from sdshape.models.families.base import Conditioning, Family, Specs, StageModule

Mark = Callable[[], None] | None

BOS_ID, EOS_ID, PAD_ID = 0, 2, 1  # valid in every vocabulary here


def token_ids(rows: int, sequence_length: int, vocab: int, device: torch.device, negative: bool = True) -> torch.Tensor:
    """Fixed token ids: with ``negative`` (CFG), unconditional rows ("" prompt) first, then conditional rows
    (a 20-token prompt); without, conditional rows only.

    Tokenization is out of scope; an encoder's cost does not depend on the ids, only on
    the sequence length.
    """
    uncond = [BOS_ID, EOS_ID] + [PAD_ID] * (sequence_length - 2)
    prompt = [3 + (7 * i) % (vocab - 3) for i in range(min(20, sequence_length - 2))]
    cond = [BOS_ID, *prompt, EOS_ID] + [PAD_ID] * (sequence_length - 2 - len(prompt))
    half = rows // 2 if negative else 0
    return torch.tensor([uncond] * half + [cond] * (rows - half), dtype=torch.long, device=device)


AfterCall = Callable[[], None] | None


def finished(after_call: AfterCall, output: Any) -> Any:
    """A stage call's output, after what its residency policy does at the end of a call (model offload sends
    the component back): inside the timed call, so every round pays the trip a pipeline call pays."""
    if after_call is not None:
        after_call()
    return output


class TextEncoderStage:
    name = "text_encoder"
    after_call: AfterCall = None  # set by the session from its residency policy

    def __init__(self, runner: Runner, input_ids: tuple[torch.Tensor, ...]):
        self.runner = runner
        self.input_ids = input_ids

    def run(self, mark: Mark = None):
        return finished(self.after_call, self.runner(*self.input_ids))


class DenoiseLoopStage:
    """The denoising loop, whatever the denoiser: ``steps`` evaluations and scheduler steps."""

    name = "denoise_loop"
    after_call: AfterCall = None

    def __init__(
        self,
        runner: Runner,
        family: Family,
        specs: Specs,
        scheduler_config: dict,
        conditioning: Conditioning,
        shapes: CallShapes,
        steps: int,
        device: torch.device,
        dtype: torch.dtype,
        seed: int,
    ):
        self.runner = runner
        self.family = family
        self.specs = specs
        self.scheduler = family.make_scheduler(scheduler_config)
        self.conditioning = conditioning
        self.steps = steps
        self.sizes = shapes.sizes
        self.device = device
        generator = torch.Generator().manual_seed(seed)
        shape = family.latent_shape(specs, shapes.batch, shapes.resolution)
        noise = torch.randn(shape, generator=generator)
        family.set_timesteps(self.scheduler, steps, device, shape)
        # Flow-matching schedulers start from unit noise and have no init_noise_sigma (their pipelines do not scale).
        self.latents = (noise * getattr(self.scheduler, "init_noise_sigma", 1.0)).to(device=device, dtype=dtype)

    def run(self, mark: Mark = None, conditioning: Conditioning | None = None) -> torch.Tensor:
        cond = (conditioning or self.conditioning).args()
        family, scheduler = self.family, self.scheduler
        cfg = self.sizes.guidance == "cfg"
        scale = self.sizes.guidance_scale
        latents = self.latents
        family.set_timesteps(scheduler, self.steps, self.device, tuple(latents.shape))  # also resets the step index
        for t in scheduler.timesteps:
            model_input = family.model_input(scheduler, torch.cat([latents, latents]) if cfg else latents, t)
            prediction = self.runner(model_input, t, *cond)
            if cfg:
                uncond, text = prediction.chunk(2)
                prediction = uncond + scale * (text - uncond)
            latents = family.scheduler_step(scheduler, prediction, t, latents)
            if mark is not None:
                mark()
        return finished(self.after_call, latents)

    def example_timestep(self) -> torch.Tensor:
        """The first timestep as the loop passes it: what an export or engine is traced with."""
        return self.scheduler.timesteps[0]


class VAEDecodeStage:
    name = "vae_decode"
    after_call: AfterCall = None

    def __init__(self, runner: Any, shapes: CallShapes, device: torch.device, dtype: torch.dtype, seed: int):
        self.runner = runner
        generator = torch.Generator().manual_seed(seed + 1)
        self.latents = torch.randn(shapes.vae["latents"], generator=generator).to(device=device, dtype=dtype)

    def run(self, mark: Mark = None, latents: torch.Tensor | None = None) -> torch.Tensor:
        return finished(self.after_call, self.runner(self.latents if latents is None else latents))


class PipelineStage:
    """The three stages in sequence: prompt ids to pixels, as one image generation.

    Each part ends with its own ``after_call``, so under model offload a component goes back to the host
    after its part, where the next component's hook (or ``maybe_free_model_hooks``, for the VAE) would send
    it: the same transfers as one call of the diffusers pipeline."""

    name = "pipeline"

    def __init__(self, text: TextEncoderStage, loop: DenoiseLoopStage, vae: VAEDecodeStage, dtype: torch.dtype):
        self.text, self.loop, self.vae = text, loop, vae
        self.dtype = dtype

    def run(self, mark: Mark = None) -> torch.Tensor:
        loop = self.loop
        conditioning = loop.family.conditioning(self.text.run(), loop.specs, loop.sizes)
        latents = loop.run(conditioning=conditioning.to(loop.device, self.dtype))
        latents = loop.family.to_vae_latents(latents, loop.specs, loop.sizes.resolution)
        return self.vae.run(latents=latents.to(self.vae.latents.dtype))  # an upcast VAE decodes in fp32


# One of the four stages ``sdshape.models.wiring.wire`` hands a session.
WiredStage = TextEncoderStage | DenoiseLoopStage | VAEDecodeStage | PipelineStage


class VAEDecode(StageModule):
    """Latents (in the diffusion model's scaled and shifted space) to pixels.

    SD's VAE has only a scaling factor; SD3's and FLUX's 16-channel VAEs also a shift
    (``latents / scaling_factor + shift_factor``, as their pipelines decode).
    """

    returns_tuple = False  # one tensor of pixels

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor)
        self.shift_factor = float(vae.config.get("shift_factor") or 0.0)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        latents = latents / self.scaling_factor
        if self.shift_factor:
            latents = latents + self.shift_factor
        return self.vae.decode(latents, return_dict=False)[0]

    @property
    def executed_params(self) -> int:
        """Parameters decode actually runs: the decoder and post_quant_conv, not the encoder."""
        parts = [self.vae.decoder, getattr(self.vae, "post_quant_conv", None)]
        return sum(p.numel() for part in parts if part is not None for p in part.parameters())
