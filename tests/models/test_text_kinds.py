"""The text-encoder kind registry: every zoo text encoder has a kind, streams and lengths follow from the
kinds (not from class names), and ONNX Runtime's optimizer types are the backend's own map."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sdshape.models.call_inputs import max_tokens
from sdshape.models.families.base import pooled_width, stream_lengths, stream_of_parts, text_parts, width
from sdshape.models.text_kinds import CLIP, DECODER_LLM, T5, kind_of, kind_of_class
from sdshape.models.zoo import all_components, get_component


def test_every_zoo_text_encoder_has_a_kind():
    for spec in all_components().values():
        if spec.kind == "text_encoder":
            for part in text_parts(spec):
                assert kind_of(part) in (CLIP, T5, DECODER_LLM), part.name


def test_an_unknown_class_names_the_known_ones():
    with pytest.raises(ValueError, match=r"no known kind; known: .*CLIPTextModel.*T5EncoderModel"):
        kind_of_class("MysteryEncoder")


def test_streams_and_lengths_follow_the_kinds():
    sd3 = get_component("sd3-clip-l+bigg+t5-xxl")
    assert [kind_of(p).name for p in text_parts(sd3)] == ["clip", "clip", "t5"]
    assert stream_of_parts(sd3) == [0, 0, 1]  # the CLIP towers share one stream, T5 reads its own
    assert stream_lengths(sd3, 256) == [77, 256]  # CLIP padded to its table beside T5
    assert max_tokens(sd3) is None  # a T5 stream has no limit
    sd15 = get_component("clip-vit-l-14")
    assert stream_lengths(sd15, 77) == [77] and max_tokens(sd15) == 77
    t5 = get_component("t5-v1.1-xxl")
    assert width(t5) == 4096 and pooled_width(t5) is None


def test_a_decoder_llm_is_one_more_kind():
    """A Gemma 2 encoder (Sana's): its own stream, no position-table limit, no pooled output."""
    clip = get_component("clip-vit-l-14")
    gemma = replace(clip, name="gemma-2-2b", library_class="Gemma2Model", config={"hidden_size": 2304})
    stack = replace(clip, name="clip+gemma", config={}, parts=(clip, gemma))
    assert kind_of(gemma) is DECODER_LLM
    assert stream_of_parts(stack) == [0, 1]
    assert stream_lengths(stack, 300) == [77, 300]
    assert max_tokens(stack) is None
    assert width(gemma) == 2304 and pooled_width(gemma) is None


def test_ort_optimizer_types_are_the_backends_map():
    pytest.importorskip("onnxruntime")
    from torch import nn

    from sdshape.backends.ort_optimize import DENOISER_TYPES, TEXT_TYPES, model_type

    def named(class_name: str) -> nn.Module:
        return type(class_name, (nn.Module,), {})()

    class Step(nn.Module):
        def __init__(self, attribute: str, inner: nn.Module):
            super().__init__()
            setattr(self, attribute, inner)

    class Text(nn.Module):
        def __init__(self, *classes: str):
            super().__init__()
            self.encoders = nn.ModuleList([named(c) for c in classes])

    assert model_type(Step("unet", named("UNet2DConditionModel"))) == "unet"
    assert model_type(Step("transformer", named("FluxTransformer2DModel"))) == "mmdit"
    assert model_type(Step("transformer", named("SanaTransformer2DModel"))) is None  # not listed: no fusions
    assert model_type(Step("vae", named("AutoencoderKL"))) == "vae"
    assert model_type(Step("vae", named("AutoencoderDC"))) is None  # the "vae" fusions are AutoencoderKL's
    assert model_type(Text("CLIPTextModel", "CLIPTextModelWithProjection")) == "clip"
    assert model_type(Text("CLIPTextModel", "CLIPTextModelWithProjection", "T5EncoderModel")) == "t5"
    assert model_type(Text("Gemma2Model")) is None
    assert set(TEXT_TYPES) == {kind.name for kind in (CLIP, T5, DECODER_LLM)}
    assert "SD3Transformer2DModel" in DENOISER_TYPES
