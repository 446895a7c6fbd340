"""FLUX.1 [dev] and [schnell]: rectified-flow transformers (FluxTransformer2DModel) on CLIP-L + T5-XXL, and
their 16-channel VAE, from the published configs.

Defaults are FluxPipeline's: 1024 px, 28 steps and guidance 3.5 (dev: a distilled guidance embedding,
one pass a step, no negative prompt), T5 prompts of 512 tokens. [schnell] has no guidance embedding
and is run with 4 steps, as its model card does.
"""

from __future__ import annotations

from sdshape.models.shared.text_encoders import CLIP_VIT_L_14, T5_ENCODERS, TINY_CLIP, TINY_T5
from sdshape.models.shared.vaes import TINY_VAE
from sdshape.models.specs import ComponentSpec, ShapeSpec

_DEV = "https://huggingface.co/black-forest-labs/FLUX.1-dev/blob/main"
_SCHNELL = "https://huggingface.co/black-forest-labs/FLUX.1-schnell/blob/main"
_T5_XXL = next(spec for spec in T5_ENCODERS if spec.name == "t5-v1.1-xxl")

FLUX_TEXT_ENCODERS = ComponentSpec(
    name="flux-clip-l+t5-xxl",
    kind="text_encoder",
    library_class="stack",
    config={},
    source=f"{_DEV} (text_encoder, text_encoder_2)",
    description="FLUX's pair: CLIP-L for the pooled vector, T5-XXL's 512-token states for attention",
    parts=(CLIP_VIT_L_14, _T5_XXL),
)

_FLUX = {
    "attention_head_dim": 128,
    "axes_dims_rope": [16, 56, 56],
    "in_channels": 64,
    "joint_attention_dim": 4096,
    "num_attention_heads": 24,
    "num_layers": 19,
    "num_single_layers": 38,
    "patch_size": 1,
    "pooled_projection_dim": 768,
}

FLUX_DEV_DIT = ComponentSpec(
    name="flux-dev-transformer",
    kind="denoiser",
    library_class="FluxTransformer2DModel",
    config={**_FLUX, "guidance_embeds": True},
    source=f"{_DEV}/transformer/config.json",
    description="FLUX.1-dev transformer (19 double + 38 single blocks, 3072 wide, guidance embedding)",
)

FLUX_SCHNELL_DIT = ComponentSpec(
    name="flux-schnell-transformer",
    kind="denoiser",
    library_class="FluxTransformer2DModel",
    config={**_FLUX, "guidance_embeds": False},
    source=f"{_SCHNELL}/transformer/config.json",
    description="FLUX.1-schnell transformer (FLUX.1-dev's blocks, no guidance embedding)",
)

FLUX_VAE = ComponentSpec(
    name="flux-vae",
    kind="vae",
    library_class="AutoencoderKL",
    config={
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
        "scaling_factor": 0.3611,
        "shift_factor": 0.1159,
    },
    source=f"{_DEV}/vae/config.json",
    description="FLUX's 16-channel VAE (scaling 0.3611, shift 0.1159)",
)

# diffusers tests/pipelines/flux/test_pipeline_flux.py (get_dummy_components), with the widths of
# sdshape's tiny CLIP (32) and tiny T5 (48), and 4-channel latents packed 2x2 into 16.
_TINY_SOURCE = "diffusers tests/pipelines/flux/test_pipeline_flux.py (get_dummy_components)"
_TINY_FLUX = {
    "patch_size": 1,
    "in_channels": 16,
    "num_layers": 1,
    "num_single_layers": 1,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "joint_attention_dim": 48,
    "pooled_projection_dim": 32,
    "axes_dims_rope": [4, 4, 8],
}
TINY_FLUX_DIT = ComponentSpec(
    "tiny-flux", "denoiser", "FluxTransformer2DModel", {**_TINY_FLUX, "guidance_embeds": True},
    _TINY_SOURCE, "tiny FLUX transformer with a guidance embedding, for tests",
)  # fmt: skip
TINY_FLUX_SCHNELL_DIT = ComponentSpec(
    "tiny-flux-schnell", "denoiser", "FluxTransformer2DModel", {**_TINY_FLUX, "guidance_embeds": False},
    _TINY_SOURCE, "tiny FLUX transformer without guidance, for tests",
)  # fmt: skip
TINY_FLUX_TEXT_ENCODERS = ComponentSpec(
    name="tiny-flux-encoders",
    kind="text_encoder",
    library_class="stack",
    config={},
    source=_TINY_SOURCE,
    description="tiny FLUX-style pair (32-wide CLIP, 48-wide T5) for tests",
    parts=(TINY_CLIP, TINY_T5),
)
TINY_FLUX_VAE = ComponentSpec(
    name="tiny-vae-flux",
    kind="vae",
    library_class="AutoencoderKL",
    config={
        **TINY_VAE.config,
        "scaling_factor": 0.3611,
        "shift_factor": 0.1159,
        "use_quant_conv": False,
        "use_post_quant_conv": False,
    },
    source=f"{TINY_VAE.source}; scaling and shift of FLUX's VAE, no quant convs",
    description="tiny VAE with FLUX's scaling and shift, for tests",
)

_SHIFT = {"base_image_seq_len": 256, "base_shift": 0.5, "max_image_seq_len": 4096, "max_shift": 1.15,
          "num_train_timesteps": 1000}  # fmt: skip
FLOW_MATCH_DEV = {**_SHIFT, "shift": 3.0, "use_dynamic_shifting": True}  # FLUX.1-dev scheduler_config.json
FLOW_MATCH_SCHNELL = {**_SHIFT, "shift": 1.0, "use_dynamic_shifting": False}  # FLUX.1-schnell's

FLUX_DEV = ShapeSpec(
    name="flux-dev",
    year=2024,
    text_encoder=FLUX_TEXT_ENCODERS.name,
    denoiser=FLUX_DEV_DIT.name,
    vae=FLUX_VAE.name,
    scheduler=FLOW_MATCH_DEV,
    native_resolution=1024,
    steps=28,
    guidance_scale=3.5,
    sequence_length=512,
    description="FLUX.1-dev (CLIP-L + T5-XXL, 12 B rectified-flow transformer, guidance-distilled)",
    source="https://huggingface.co/black-forest-labs/FLUX.1-dev",
)
FLUX_SCHNELL = ShapeSpec(
    name="flux-schnell",
    year=2024,
    text_encoder=FLUX_TEXT_ENCODERS.name,
    denoiser=FLUX_SCHNELL_DIT.name,
    vae=FLUX_VAE.name,
    scheduler=FLOW_MATCH_SCHNELL,
    native_resolution=1024,
    steps=4,
    guidance_scale=0.0,
    sequence_length=512,
    description="FLUX.1-schnell (timestep-distilled: 4 steps, no guidance)",
    source="https://huggingface.co/black-forest-labs/FLUX.1-schnell",
)
_TINY = {"text_encoder": TINY_FLUX_TEXT_ENCODERS.name, "vae": TINY_FLUX_VAE.name, "native_resolution": 64,
         "sequence_length": 24, "source": "diffusers FLUX pipeline tests", "tags": ("test",)}  # fmt: skip
TINY_FLUX = ShapeSpec(
    name="tiny-flux", denoiser=TINY_FLUX_DIT.name, scheduler=FLOW_MATCH_DEV, steps=28, guidance_scale=3.5,
    description="tiny FLUX-like shape (packed latents, guidance embedding, dynamic shift) for tests", **_TINY,
)  # fmt: skip
TINY_FLUX_SCHNELL = ShapeSpec(
    name="tiny-flux-schnell", denoiser=TINY_FLUX_SCHNELL_DIT.name, scheduler=FLOW_MATCH_SCHNELL, steps=4,
    guidance_scale=0.0, description="tiny FLUX-schnell-like shape (no guidance) for tests", **_TINY,
)  # fmt: skip

COMPONENTS = (
    FLUX_TEXT_ENCODERS, FLUX_DEV_DIT, FLUX_SCHNELL_DIT, FLUX_VAE,
    TINY_FLUX_DIT, TINY_FLUX_SCHNELL_DIT, TINY_FLUX_TEXT_ENCODERS, TINY_FLUX_VAE,
)  # fmt: skip
SHAPES = (FLUX_DEV, FLUX_SCHNELL, TINY_FLUX, TINY_FLUX_SCHNELL)
