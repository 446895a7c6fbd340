"""Text encoder configs, copied field by field from the published config.json files."""

from __future__ import annotations

from sdshape.models.specs import ComponentSpec

# Fields shared by every CLIP text tower used in Stable Diffusion.
_CLIP_COMMON = {
    "vocab_size": 49408,
    "max_position_embeddings": 77,
    "layer_norm_eps": 1e-05,
    "attention_dropout": 0.0,
    "dropout": 0.0,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}

CLIP_VIT_L_14 = ComponentSpec(
    name="clip-vit-l-14",
    kind="text_encoder",
    library_class="CLIPTextModel",
    config={
        **_CLIP_COMMON,
        "hidden_act": "quick_gelu",
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "projection_dim": 768,
    },
    source="https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/blob/main/text_encoder/config.json",
    description="OpenAI CLIP ViT-L/14 text tower (SD 1.x; also SDXL's first encoder)",
)

OPENCLIP_VIT_H_14 = ComponentSpec(
    name="openclip-vit-h-14",
    kind="text_encoder",
    library_class="CLIPTextModel",
    config={
        **_CLIP_COMMON,
        "hidden_act": "gelu",
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_attention_heads": 16,
        # OpenCLIP ViT-H/14 has 24 layers; SD 2.x ships 23 (the last one dropped).
        "num_hidden_layers": 23,
        "projection_dim": 512,
    },
    source="https://huggingface.co/stabilityai/stable-diffusion-2-1/blob/main/text_encoder/config.json",
    description="OpenCLIP ViT-H/14 text tower as shipped with SD 2.x (23 layers)",
)

OPENCLIP_VIT_BIGG_14 = ComponentSpec(
    name="openclip-vit-bigg-14",
    kind="text_encoder",
    library_class="CLIPTextModelWithProjection",
    config={
        **_CLIP_COMMON,
        "hidden_act": "gelu",
        "hidden_size": 1280,
        "intermediate_size": 5120,
        "num_attention_heads": 20,
        "num_hidden_layers": 32,
        "projection_dim": 1280,
    },
    source="https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/blob/main/text_encoder_2/config.json",
    description="OpenCLIP ViT-bigG/14 text tower with projection (SDXL's second encoder)",
    hidden_layer="penultimate",
    pooled=True,
)

SDXL_TEXT_ENCODERS = ComponentSpec(
    name="sdxl-clip-l+bigg",
    kind="text_encoder",
    library_class="stack",
    config={},
    source="https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0 (text_encoder + text_encoder_2)",
    description="SDXL's pair: CLIP ViT-L/14 and OpenCLIP ViT-bigG/14, penultimate hidden states concatenated (2048)",
    parts=(CLIP_VIT_L_14, OPENCLIP_VIT_BIGG_14),
    hidden_layer="penultimate",
    pooled=True,
)

# The dummy text encoder of diffusers' own pipeline tests.
TINY_CLIP_CONFIG = {
    **_CLIP_COMMON,
    "vocab_size": 1000,
    "hidden_act": "gelu",
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_attention_heads": 4,
    "num_hidden_layers": 5,
    "projection_dim": 32,
}
_TINY_SOURCE = "diffusers tests/pipelines/stable_diffusion/test_stable_diffusion.py (get_dummy_components)"

TINY_CLIP = ComponentSpec(
    name="tiny-clip",
    kind="text_encoder",
    library_class="CLIPTextModel",
    config=TINY_CLIP_CONFIG,
    source=_TINY_SOURCE,
    description="tiny CLIP text tower for tests",
)

_TINY_CLIP_PROJ = ComponentSpec(
    name="tiny-clip-proj",
    kind="text_encoder",
    library_class="CLIPTextModelWithProjection",
    config=TINY_CLIP_CONFIG,
    source="diffusers tests/pipelines/stable_diffusion_xl/test_stable_diffusion_xl.py (get_dummy_components)",
    description="tiny CLIP text tower with projection for tests",
    hidden_layer="penultimate",
    pooled=True,
)

TINY_XL_TEXT_ENCODERS = ComponentSpec(
    name="tiny-xl-clip-pair",
    kind="text_encoder",
    library_class="stack",
    config={},
    source=_TINY_CLIP_PROJ.source,
    description="tiny SDXL-style pair (2 x 32 wide) for tests",
    parts=(TINY_CLIP, _TINY_CLIP_PROJ),
    hidden_layer="penultimate",
    pooled=True,
)

TEXT_ENCODERS = (
    CLIP_VIT_L_14,
    OPENCLIP_VIT_H_14,
    OPENCLIP_VIT_BIGG_14,
    SDXL_TEXT_ENCODERS,
    TINY_CLIP,
    TINY_XL_TEXT_ENCODERS,
)


# T5 v1.1 encoders (T5EncoderModel: the encoder stack only). Fields shared by the google/t5-v1_1-* configs.
_T5_COMMON = {
    "vocab_size": 32128,
    "d_kv": 64,
    "feed_forward_proj": "gated-gelu",
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "dropout_rate": 0.1,
    "layer_norm_epsilon": 1e-06,
    "initializer_factor": 1.0,
    "is_encoder_decoder": True,
    "tie_word_embeddings": False,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
}
_T5_SIZES = {  # name: (d_model, d_ff, num_layers, num_heads)
    "small": (512, 1024, 8, 6),
    "base": (768, 2048, 12, 12),
    "large": (1024, 2816, 24, 16),
    "xl": (2048, 5120, 24, 32),
    "xxl": (4096, 10240, 24, 64),
}


def _t5(size: str) -> ComponentSpec:
    d_model, d_ff, layers, heads = _T5_SIZES[size]
    return ComponentSpec(
        name=f"t5-v1.1-{size}",
        kind="text_encoder",
        library_class="T5EncoderModel",
        config={
            **_T5_COMMON,
            "d_model": d_model,
            "d_ff": d_ff,
            "num_layers": layers,
            "num_decoder_layers": layers,
            "num_heads": heads,
        },
        source=f"https://huggingface.co/google/t5-v1_1-{size}/blob/main/config.json",
        description=f"T5 v1.1 {size} encoder ({layers} layers, {d_model} wide; no 77-token limit)",
    )


T5_ENCODERS = tuple(_t5(size) for size in _T5_SIZES)

TINY_T5 = ComponentSpec(
    name="tiny-t5",
    kind="text_encoder",
    library_class="T5EncoderModel",
    config={
        **_T5_COMMON,
        "vocab_size": 1000,
        "d_model": 48,
        "d_kv": 12,
        "d_ff": 64,
        "num_layers": 2,
        "num_decoder_layers": 2,
        "num_heads": 4,
    },
    source="shaped like transformers' T5 tests (T5ModelTester), 48 wide so composing it with tiny-unet adapts",
    description="tiny T5 encoder for tests",
)

TEXT_ENCODERS = (*TEXT_ENCODERS, *T5_ENCODERS, TINY_T5)
