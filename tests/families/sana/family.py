"""The toy Sana family's call contract, as diffusers' SanaPipeline runs it.

Text: Gemma 2 reads the prompt with its attention mask (right-padded) and the pipeline keeps the last
hidden state. The prompt, not the negative prompt, is prefixed with the complex human instruction:
tokenized to ``instruction + max_sequence_length - 2`` tokens, then the first position and the last
``max_sequence_length - 1`` are kept (``select_index``), states and mask alike; the negative prompt is
encoded on its own at ``max_sequence_length`` tokens. So the text stage runs the encoder twice, the
prompt's call the longer one, as the pipeline does.

Denoiser: the DiT attends to those states under that mask, with the timestep scaled by the config's
``timestep_scale``; CFG by batch doubling; DPM-Solver++ on flow sigmas, latents not scaled in (the
pipeline never calls ``scale_model_input``). VAE: AutoencoderDC decodes ``latents / scaling_factor``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from sdshape.core.errors import UsageError
from sdshape.models.families.base import (
    Conditioning,
    Family,
    Sizes,
    Specs,
    StageModule,
    TextEncoders,
    encode,
    halves,
    text_parts,
    width,
)
from sdshape.models.families.pixart.family import with_caption_width
from sdshape.models.specs import ComponentSpec
from sdshape.models.stages import BOS_ID, PAD_ID


def instruction_ids(tokens: int, vocab: int) -> list[int]:
    """Fixed ids standing for the tokenized instruction (its BOS first): its cost is its length."""
    return [BOS_ID] + [3 + (11 * i) % (vocab - 3) for i in range(tokens - 1)] if tokens else []


class InstructedGemma(TextEncoders):
    """Gemma 2 on the negative rows as they are and on the prompt rows behind the instruction; returns
    (hidden states, mask) for all rows, negative half first, each ``input_ids.shape[1]`` tokens long."""

    def __init__(self, encoders: list[nn.Module], spec: ComponentSpec, instruction_tokens: int):
        super().__init__(encoders, spec)
        ids = instruction_ids(instruction_tokens, int(text_parts(spec)[0].config["vocab_size"]))
        self.register_buffer("instruction", torch.tensor([ids], dtype=torch.long), persistent=False)

    def _encoded(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = (ids != PAD_ID).long()
        # transformers cannot read a mask's values on the meta device (FLOP counting); it changes no count.
        hidden, _ = encode(self.encoders[0], ids, "last", None if ids.is_meta else mask)
        return hidden, mask

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        negative, prompt = halves(input_ids)
        length = input_ids.shape[1]
        if self.instruction.shape[1]:
            # [instruction (BOS first)] + the prompt without its BOS, truncated to instruction + length - 2.
            prompt = torch.cat([self.instruction.expand(prompt.shape[0], -1), prompt[:, 1 : length - 1]], dim=1)
        negative_hidden, negative_mask = self._encoded(negative)
        hidden, mask = self._encoded(prompt)
        keep = [0, *range(prompt.shape[1] - length + 1, prompt.shape[1])]  # the pipeline's select_index
        return torch.cat([negative_hidden, hidden[:, keep]]), torch.cat([negative_mask, mask[:, keep]])


class SanaStep(StageModule):
    """One Sana DiT evaluation (the noise half of a learned-sigma prediction, if the config has one)."""

    def __init__(self, transformer: nn.Module):
        super().__init__()
        self.transformer = transformer
        config = transformer.config
        self.timestep_scale = float(config.get("timestep_scale", 1.0))
        self.learned_sigma = config.out_channels // 2 == config.in_channels

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor,
    ) -> torch.Tensor:
        out = self.transformer(
            sample,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            timestep=timestep.expand(sample.shape[0]) * self.timestep_scale,
            return_dict=False,
        )[0]
        return out.chunk(2, dim=1)[0] if self.learned_sigma else out


class SanaFamily(Family):
    name = "sana"
    description = "Sana linear DiTs: Gemma 2 states behind a complex human instruction, CFG, flow DPM-Solver++"
    denoiser_classes = ("SanaTransformer2DModel",)
    weights_folders: ClassVar[dict[str, tuple[str, ...]]] = {
        "text_encoder": ("text_encoder",),
        "denoiser": ("transformer",),
        "vae": ("vae",),
    }
    scheduler_class = "DPMSolverMultistepScheduler"
    onnx_notes = "exported as SanaStep(sample, timestep, encoder_hidden_states, encoder_attention_mask)"
    # Tokens of the instruction prefix. The real one is SanaPipeline's default complex_human_instruction
    # through Gemma's tokenizer, which this offline toy does not have; 12 keeps the tiny prompt call longer
    # than the negative one, as the pipeline's is.
    instruction_tokens = 12

    def text_module(self, encoders: list[nn.Module], spec: ComponentSpec) -> nn.Module:
        return InstructedGemma(encoders, spec, self.instruction_tokens)

    def step_module(self, model: nn.Module, spec: ComponentSpec) -> nn.Module:
        return SanaStep(model)

    def text_output_width(self, spec: ComponentSpec) -> int:
        return width(text_parts(spec)[0])

    def conditioning(self, text_outputs: tuple[torch.Tensor, ...], specs: Specs, sizes: Sizes) -> Conditioning:
        return Conditioning({"encoder_hidden_states": text_outputs[0], "encoder_attention_mask": text_outputs[1]})

    def conditioning_shapes(self, specs: Specs, sizes: Sizes) -> dict[str, tuple[int, ...]]:
        rows, tokens = sizes.rows, sizes.sequence_length
        return {
            "encoder_hidden_states": (rows, tokens, self.text_output_width(specs["text_encoder"])),
            "encoder_attention_mask": (rows, tokens),
        }

    def model_input(self, scheduler: object, latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return latents  # SanaPipeline passes the latents as they are

    def diffusers_pipeline(self, modules: dict, scheduler: object) -> object:
        from diffusers import SanaPipeline

        return SanaPipeline(
            tokenizer=None, text_encoder=modules["text_encoder"].encoders[0], vae=modules["vae"].vae,
            transformer=modules["denoiser"].transformer, scheduler=scheduler,
        )  # fmt: skip

    def pipeline_inputs(self, conditioning: Conditioning) -> dict:
        negative, prompt = halves(conditioning["encoder_hidden_states"])
        negative_mask, mask = halves(conditioning["encoder_attention_mask"])
        return {
            "prompt_embeds": prompt, "prompt_attention_mask": mask, "negative_prompt_embeds": negative,
            "negative_prompt_attention_mask": negative_mask, "negative_prompt": None, "use_resolution_binning": False,
        }  # fmt: skip

    def adapt(self, denoiser: ComponentSpec, text: ComponentSpec) -> tuple[ComponentSpec, str | None]:
        """The caption projection resized to the text encoder's width (the DiT's blocks are unchanged)."""
        if text.is_stack and len(text.parts) > 1:
            raise UsageError(f"a Sana DiT attends to one text encoder; {text.name} is a stack of {len(text.parts)}")
        return with_caption_width(denoiser, self.text_output_width(text), text.name)
