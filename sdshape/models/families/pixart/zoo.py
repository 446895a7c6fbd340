"""PixArt-α and PixArt-Σ: DiT denoisers (PixArtTransformer2DModel) on T5-XXL, from the published configs.

Defaults are those of PixArtAlphaPipeline and PixArtSigmaPipeline: 1024 px, 20 steps, guidance 4.5,
T5 prompts of 120 (α) and 300 (Σ) tokens, the negative prompt encoded too (CFG).
"""

from __future__ import annotations

from sdshape.models.specs import ComponentSpec, ShapeSpec

_PIXART_XL_2 = {
    "activation_fn": "gelu-approximate",
    "attention_bias": True,
    "attention_head_dim": 72,
    "caption_channels": 4096,
    "cross_attention_dim": 1152,
    "dropout": 0.0,
    "in_channels": 4,
    "norm_elementwise_affine": False,
    "norm_eps": 1e-06,
    "norm_num_groups": 32,
    "norm_type": "ada_norm_single",
    "num_attention_heads": 16,
    "num_embeds_ada_norm": 1000,
    "num_layers": 28,
    "out_channels": 8,  # learned sigma: the pipeline keeps the first 4 channels
    "patch_size": 2,
    "sample_size": 128,
    "upcast_attention": False,
}

PIXART_ALPHA_XL = ComponentSpec(
    name="pixart-alpha-xl-2-1024",
    kind="denoiser",
    library_class="PixArtTransformer2DModel",
    # sample_size 128: the model and the pipeline add resolution and aspect-ratio conditions.
    config=dict(_PIXART_XL_2),
    source="https://huggingface.co/PixArt-alpha/PixArt-XL-2-1024-MS/blob/main/transformer/config.json",
    description="PixArt-α XL/2 1024 DiT (28 blocks, 1152 wide, T5 cross-attention)",
)

PIXART_SIGMA_XL = ComponentSpec(
    name="pixart-sigma-xl-2-1024",
    kind="denoiser",
    library_class="PixArtTransformer2DModel",
    config={**_PIXART_XL_2, "interpolation_scale": 2, "use_additional_conditions": False},
    source="https://huggingface.co/PixArt-alpha/PixArt-Sigma-XL-2-1024-MS/blob/main/transformer/config.json",
    description="PixArt-Σ XL/2 1024 DiT (α's blocks, no size conditions)",
)

# diffusers tests/pipelines/pixart_alpha/test_pixart.py (get_dummy_components), with caption_channels
# set to the width of sdshape's tiny T5 (48) instead of the hub's tiny-random-t5 (32).
TINY_PIXART = ComponentSpec(
    name="tiny-pixart",
    kind="denoiser",
    library_class="PixArtTransformer2DModel",
    config={
        "sample_size": 8,
        "num_layers": 2,
        "patch_size": 2,
        "attention_head_dim": 8,
        "num_attention_heads": 3,
        "caption_channels": 48,
        "in_channels": 4,
        "cross_attention_dim": 24,
        "out_channels": 8,
        "attention_bias": True,
        "activation_fn": "gelu-approximate",
        "num_embeds_ada_norm": 1000,
        "norm_type": "ada_norm_single",
        "norm_elementwise_affine": False,
        "norm_eps": 1e-6,
    },
    source="diffusers tests/pipelines/pixart_alpha/test_pixart.py (get_dummy_components), caption_channels 48",
    description="tiny PixArt DiT for tests",
)

# DPMSolverMultistepScheduler() with its defaults, as scripts/convert_pixart_alpha_to_diffusers.py saves it.
DPM_SOLVER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "solver_order": 2,
    "prediction_type": "epsilon",
    "algorithm_type": "dpmsolver++",
    "solver_type": "midpoint",
    "lower_order_final": True,
    "timestep_spacing": "linspace",
    "steps_offset": 0,
}

_PIXART_DEFAULTS = {"steps": 20, "guidance_scale": 4.5, "native_resolution": 1024, "scheduler": DPM_SOLVER}

PIXART_ALPHA = ShapeSpec(
    name="pixart-alpha",
    year=2023,
    text_encoder="t5-v1.1-xxl",
    denoiser=PIXART_ALPHA_XL.name,
    vae="sd-vae",
    description="PixArt-α XL-2 1024-MS (T5-XXL, DiT, SD VAE)",
    source="https://huggingface.co/PixArt-alpha/PixArt-XL-2-1024-MS",
    sequence_length=120,
    **_PIXART_DEFAULTS,
)

PIXART_SIGMA = ShapeSpec(
    name="pixart-sigma",
    year=2024,
    text_encoder="t5-v1.1-xxl",
    denoiser=PIXART_SIGMA_XL.name,
    vae="sdxl-vae",
    description="PixArt-Σ XL-2 1024-MS (T5-XXL, DiT, SDXL VAE)",
    source="https://huggingface.co/PixArt-alpha/PixArt-Sigma-XL-2-1024-MS",
    sequence_length=300,
    **_PIXART_DEFAULTS,
)

TINY_PIXART_SHAPE = ShapeSpec(
    name="tiny-pixart",
    text_encoder="tiny-t5",
    denoiser=TINY_PIXART.name,
    vae="tiny-vae",
    scheduler=DPM_SOLVER,
    native_resolution=64,
    steps=20,
    guidance_scale=4.5,
    description="tiny PixArt-like shape (T5, DiT with T5 attention mask) for tests",
    source="diffusers PixArt pipeline tests",
    sequence_length=16,
    tags=("test",),
)

DENOISERS = (PIXART_ALPHA_XL, PIXART_SIGMA_XL, TINY_PIXART)
SHAPES = (PIXART_ALPHA, PIXART_SIGMA, TINY_PIXART_SHAPE)
