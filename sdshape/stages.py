"""The four measured stages, built on backend runners.

Each stage holds fixed inputs made once from a seed, and ``run(mark)`` does one
round. ``mark`` (from :class:`sdshape.timing.Clock`) is called after each
denoising step, so the UNet loop reports per-step times, first step included.
The loop follows diffusers' StableDiffusion(XL)Pipeline: a real scheduler built
from its config, classifier-free guidance by batch doubling, the guidance
combine and ``scheduler.step``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from sdshape.backends.base import Runner
from sdshape.call_inputs import CallShapes

Mark = Callable[[], None] | None


def token_ids(rows: int, sequence_length: int, vocab: int, device: torch.device) -> torch.Tensor:
    """Fixed token ids: unconditional rows ("" prompt) then conditional rows (a 20-token prompt).

    Tokenization is out of scope; CLIP's cost does not depend on the ids, only on
    the sequence length. bos=0, eos=2, pad=1 are valid in every vocabulary here.
    """
    bos, eos, pad = 0, 2, 1
    uncond = [bos, eos] + [pad] * (sequence_length - 2)
    prompt = [3 + (7 * i) % (vocab - 3) for i in range(min(20, sequence_length - 2))]
    cond = [bos, *prompt, eos] + [pad] * (sequence_length - 2 - len(prompt))
    half = rows // 2
    return torch.tensor([uncond] * half + [cond] * (rows - half), dtype=torch.long, device=device)


@dataclass
class Conditioning:
    """What the UNet is conditioned on, CFG-doubled: hidden states, and for SDXL pooled text + size ids."""

    encoder_hidden_states: torch.Tensor
    text_embeds: torch.Tensor | None = None
    time_ids: torch.Tensor | None = None

    @classmethod
    def from_text(cls, outputs: tuple[torch.Tensor, ...], resolution: int, dtype: torch.dtype) -> Conditioning:
        hidden = outputs[0].to(dtype)
        if len(outputs) < 2:
            return cls(hidden)
        rows = hidden.shape[0]
        # (original h, original w, crop top, crop left, target h, target w), as SDXL's pipeline builds it.
        ids = torch.tensor([resolution, resolution, 0, 0, resolution, resolution], dtype=dtype, device=hidden.device)
        return cls(hidden, outputs[1].to(dtype), ids.repeat(rows, 1))

    def unet_args(self) -> tuple[torch.Tensor, ...]:
        if self.text_embeds is None:
            return (self.encoder_hidden_states,)
        return (self.encoder_hidden_states, self.text_embeds, self.time_ids)


def make_scheduler(config: dict):
    """EulerDiscreteScheduler from a model's scheduler config (unknown keys are ignored)."""
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler.from_config(config)


class TextEncoderStage:
    name = "text_encoder"

    def __init__(self, runner: Runner, input_ids: torch.Tensor):
        self.runner = runner
        self.input_ids = input_ids

    def run(self, mark: Mark = None):
        return self.runner(self.input_ids)


class UNetLoopStage:
    name = "unet_loop"

    def __init__(
        self,
        runner: Runner,
        scheduler_config: dict,
        conditioning: Conditioning,
        shapes: CallShapes,
        steps: int,
        guidance: float,
        device: torch.device,
        dtype: torch.dtype,
        seed: int,
    ):
        self.runner = runner
        self.scheduler = make_scheduler(scheduler_config)
        self.conditioning = conditioning
        self.steps = steps
        self.guidance = guidance
        self.device = device
        self.scheduler.set_timesteps(steps, device=device)
        _, channels, height, width = shapes.unet["sample"]
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn((shapes.batch, channels, height, width), generator=generator)
        self.latents = (noise * self.scheduler.init_noise_sigma).to(device=device, dtype=dtype)

    def run(self, mark: Mark = None, conditioning: Conditioning | None = None) -> torch.Tensor:
        cond = (conditioning or self.conditioning).unet_args()
        scheduler = self.scheduler
        scheduler.set_timesteps(self.steps, device=self.device)  # also resets the scheduler's step index
        latents = self.latents
        for t in scheduler.timesteps:
            model_input = scheduler.scale_model_input(torch.cat([latents, latents]), t)
            noise = self.runner(model_input, t, *cond)
            uncond, text = noise.chunk(2)
            noise = uncond + self.guidance * (text - uncond)
            latents = scheduler.step(noise, t, latents, return_dict=False)[0]
            if mark is not None:
                mark()
        return latents


class VAEDecodeStage:
    name = "vae_decode"

    def __init__(self, runner: Runner, shapes: CallShapes, device: torch.device, dtype: torch.dtype, seed: int):
        self.runner = runner
        generator = torch.Generator().manual_seed(seed + 1)
        self.latents = torch.randn(shapes.vae["latents"], generator=generator).to(device=device, dtype=dtype)

    def run(self, mark: Mark = None, latents: torch.Tensor | None = None) -> torch.Tensor:
        return self.runner(self.latents if latents is None else latents)


class PipelineStage:
    """The three stages in sequence: prompt ids to pixels, as one image generation."""

    name = "pipeline"

    def __init__(
        self,
        text: TextEncoderStage,
        loop: UNetLoopStage,
        vae: VAEDecodeStage,
        resolution: int,
        dtype: torch.dtype,
    ):
        self.text, self.loop, self.vae = text, loop, vae
        self.resolution = resolution
        self.dtype = dtype

    def run(self, mark: Mark = None) -> torch.Tensor:
        conditioning = Conditioning.from_text(self.text.run(), self.resolution, self.dtype)
        latents = self.loop.run(conditioning=conditioning)
        return self.vae.run(latents=latents)
