"""Stable Diffusion 3 and 3.5: MMDiT denoisers (SD3Transformer2DModel) on CLIP-L + OpenCLIP bigG + T5-XXL,
and their 16-channel VAE, from the published configs.

Defaults are StableDiffusion3Pipeline's: 1024 px, 28 steps, guidance 7.0, T5 prompts of 256 tokens
beside CLIP's 77, the negative prompt encoded too (CFG). The model cards suggest other settings for
3.5 (40 steps and 4.5 for medium, 28 and 3.5 for large); ``--steps`` sets them.
"""

from __future__ import annotations

from sdshape.models.shared.text_encoders import (
    _T5_COMMON,
    CLIP_VIT_L_14,
    OPENCLIP_VIT_BIGG_14,
    T5_ENCODERS,
    TINY_CLIP_CONFIG,
)
from sdshape.models.shared.vaes import TINY_VAE
from sdshape.models.specs import ComponentSpec, ShapeSpec

_SD3_REPO = "https://huggingface.co/stabilityai/stable-diffusion-3-medium-diffusers/blob/main"
_T5_XXL = next(spec for spec in T5_ENCODERS if spec.name == "t5-v1.1-xxl")

CLIP_L_PROJ = ComponentSpec(
    name="clip-vit-l-14-proj",
    kind="text_encoder",
    library_class="CLIPTextModelWithProjection",
    config=dict(CLIP_VIT_L_14.config),
    source=f"{_SD3_REPO}/text_encoder/config.json",
    description="OpenAI CLIP ViT-L/14 text tower with its projection (SD3's first encoder)",
    hidden_layer="penultimate",
    pooled=True,
)

SD3_TEXT_ENCODERS = ComponentSpec(
    name="sd3-clip-l+bigg+t5-xxl",
    kind="text_encoder",
    library_class="stack",
    config={},
    source=f"{_SD3_REPO} (text_encoder, text_encoder_2, text_encoder_3)",
    description="SD3's three: CLIP-L and bigG (penultimate, pooled) beside T5-XXL on its own 256-token stream",
    parts=(CLIP_L_PROJ, OPENCLIP_VIT_BIGG_14, _T5_XXL),
)

_MMDIT = {
    "attention_head_dim": 64,
    "in_channels": 16,
    "joint_attention_dim": 4096,
    "out_channels": 16,
    "patch_size": 2,
    "pooled_projection_dim": 2048,
    "sample_size": 128,
}

SD3_MEDIUM_MMDIT = ComponentSpec(
    name="sd3-medium-mmdit",
    kind="denoiser",
    library_class="SD3Transformer2DModel",
    config={
        **_MMDIT,
        "caption_projection_dim": 1536,
        "num_attention_heads": 24,
        "num_layers": 24,
        "pos_embed_max_size": 192,
    },
    source=f"{_SD3_REPO}/transformer/config.json",
    description="SD3-medium MMDiT (24 joint blocks, 1536 wide; 192x192 position table)",
)

SD35_MEDIUM_MMDIT = ComponentSpec(
    name="sd35-medium-mmdit",
    kind="denoiser",
    library_class="SD3Transformer2DModel",
    config={
        **_MMDIT,
        "caption_projection_dim": 1536,
        "num_attention_heads": 24,
        "num_layers": 24,
        "pos_embed_max_size": 384,
        "qk_norm": "rms_norm",
        "dual_attention_layers": list(range(13)),
    },
    source="https://huggingface.co/stabilityai/stable-diffusion-3.5-medium/blob/main/transformer/config.json",
    description="SD3.5-medium MMDiT-X (24 blocks, 13 with a second self-attention; QK RMSNorm)",
)

SD35_LARGE_MMDIT = ComponentSpec(
    name="sd35-large-mmdit",
    kind="denoiser",
    library_class="SD3Transformer2DModel",
    config={
        **_MMDIT,
        "caption_projection_dim": 2432,
        "num_attention_heads": 38,
        "num_layers": 38,
        "pos_embed_max_size": 192,
        "qk_norm": "rms_norm",
    },
    source="https://huggingface.co/stabilityai/stable-diffusion-3.5-large/blob/main/transformer/config.json",
    description="SD3.5-large MMDiT (38 joint blocks, 2432 wide; QK RMSNorm)",
)

_FLOW_VAE = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 16,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 1024,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "force_upcast": True,
}

SD3_VAE = ComponentSpec(
    name="sd3-vae",
    kind="vae",
    library_class="AutoencoderKL",
    config={**_FLOW_VAE, "scaling_factor": 1.5305, "shift_factor": 0.0609},
    source=f"{_SD3_REPO}/vae/config.json",
    description="SD3's 16-channel VAE (scaling 1.5305, shift 0.0609)",
)

# Tiny parts, shaped like diffusers tests/pipelines/stable_diffusion_3/test_pipeline_stable_diffusion_3.py,
# with a T5 as wide as the two CLIP towers together (as T5-XXL's 4096 is wider than CLIP's 2048).
_TINY_SOURCE = "diffusers tests/pipelines/stable_diffusion_3/test_pipeline_stable_diffusion_3.py (get_dummy_components)"
TINY_CLIP_PROJ_A = ComponentSpec(
    "tiny-clip-proj-a", "text_encoder", "CLIPTextModelWithProjection", dict(TINY_CLIP_CONFIG), _TINY_SOURCE,
    "tiny CLIP with projection (SD3-style, first)", hidden_layer="penultimate", pooled=True,
)  # fmt: skip
TINY_CLIP_PROJ_B = ComponentSpec(
    "tiny-clip-proj-b", "text_encoder", "CLIPTextModelWithProjection", dict(TINY_CLIP_CONFIG), _TINY_SOURCE,
    "tiny CLIP with projection (SD3-style, second)", hidden_layer="penultimate", pooled=True,
)  # fmt: skip
TINY_T5_64 = ComponentSpec(
    name="tiny-t5-64",
    kind="text_encoder",
    library_class="T5EncoderModel",
    config={
        **_T5_COMMON,
        "vocab_size": 1000,
        "d_model": 64,
        "d_kv": 16,
        "d_ff": 64,
        "num_layers": 2,
        "num_decoder_layers": 2,
        "num_heads": 4,
    },
    source=_TINY_SOURCE + ", 64 wide",
    description="tiny T5 encoder, 64 wide, for tests",
)
TINY_SD3_TEXT_ENCODERS = ComponentSpec(
    name="tiny-sd3-encoders",
    kind="text_encoder",
    library_class="stack",
    config={},
    source=_TINY_SOURCE,
    description="tiny SD3-style triple (2 x 32-wide CLIP with projection, 64-wide T5) for tests",
    parts=(TINY_CLIP_PROJ_A, TINY_CLIP_PROJ_B, TINY_T5_64),
)
TINY_MMDIT = ComponentSpec(
    name="tiny-mmdit",
    kind="denoiser",
    library_class="SD3Transformer2DModel",
    config={
        "sample_size": 8,
        "patch_size": 1,
        "in_channels": 4,
        "num_layers": 1,
        "attention_head_dim": 8,
        "num_attention_heads": 4,
        "caption_projection_dim": 32,
        "joint_attention_dim": 64,
        "pooled_projection_dim": 64,
        "out_channels": 4,
        "pos_embed_max_size": 16,
    },
    source=_TINY_SOURCE + ", with a position table (pos_embed_max_size 16) as the real ones have",
    description="tiny SD3 MMDiT for tests",
)
TINY_FLOW_VAE = ComponentSpec(
    name="tiny-vae-shifted",
    kind="vae",
    library_class="AutoencoderKL",
    config={
        **TINY_VAE.config,
        "scaling_factor": 1.5305,
        "shift_factor": 0.0609,
        "use_quant_conv": False,
        "use_post_quant_conv": False,
    },
    source=f"{TINY_VAE.source}; scaling and shift of SD3's VAE, no quant convs",
    description="tiny VAE with SD3's scaling and shift, for tests",
)

FLOW_MATCH_SD3 = {"num_train_timesteps": 1000, "shift": 3.0}  # scheduler/scheduler_config.json

_SD3_DEFAULTS = {"steps": 28, "guidance_scale": 7.0, "native_resolution": 1024, "sequence_length": 256}
_SD3_PARTS = {"text_encoder": SD3_TEXT_ENCODERS.name, "vae": SD3_VAE.name, "scheduler": FLOW_MATCH_SD3}

SD3_MEDIUM = ShapeSpec(
    name="sd3-medium",
    year=2024,
    denoiser=SD3_MEDIUM_MMDIT.name,
    description="Stable Diffusion 3 medium (CLIP-L + bigG + T5-XXL, MMDiT, 16-channel VAE)",
    source="https://huggingface.co/stabilityai/stable-diffusion-3-medium-diffusers",
    **_SD3_PARTS,
    **_SD3_DEFAULTS,
)
SD35_MEDIUM = ShapeSpec(
    name="sd35-medium",
    year=2024,
    denoiser=SD35_MEDIUM_MMDIT.name,
    description="Stable Diffusion 3.5 medium (MMDiT-X)",
    source="https://huggingface.co/stabilityai/stable-diffusion-3.5-medium",
    **_SD3_PARTS,
    **_SD3_DEFAULTS,
)
SD35_LARGE = ShapeSpec(
    name="sd35-large",
    year=2024,
    denoiser=SD35_LARGE_MMDIT.name,
    description="Stable Diffusion 3.5 large (MMDiT, 8.1 B)",
    source="https://huggingface.co/stabilityai/stable-diffusion-3.5-large",
    **_SD3_PARTS,
    **_SD3_DEFAULTS,
)
TINY_SD3 = ShapeSpec(
    name="tiny-sd3",
    text_encoder=TINY_SD3_TEXT_ENCODERS.name,
    denoiser=TINY_MMDIT.name,
    vae=TINY_FLOW_VAE.name,
    scheduler=FLOW_MATCH_SD3,
    native_resolution=64,
    steps=28,
    guidance_scale=7.0,
    sequence_length=24,
    description="tiny SD3-like shape (three encoders, two streams, MMDiT, shifted VAE) for tests",
    source="diffusers SD3 pipeline tests",
    tags=("test",),
)

COMPONENTS = (
    CLIP_L_PROJ, SD3_TEXT_ENCODERS, SD3_MEDIUM_MMDIT, SD35_MEDIUM_MMDIT, SD35_LARGE_MMDIT, SD3_VAE,
    TINY_SD3_TEXT_ENCODERS, TINY_T5_64, TINY_MMDIT, TINY_FLOW_VAE,
)  # fmt: skip
SHAPES = (SD3_MEDIUM, SD35_MEDIUM, SD35_LARGE, TINY_SD3)
