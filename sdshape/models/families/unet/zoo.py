"""The UNet family's zoo: UNet configs (diffusers UNet2DConditionModel), field by field from the published
files, and the shapes of the pipelines that run them. Defaults are those of StableDiffusion(XL)Pipeline."""

from __future__ import annotations

from sdshape.models.specs import ComponentSpec, ShapeSpec

_SD_UNET_COMMON = {
    "act_fn": "silu",
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

SD15_UNET = ComponentSpec(
    name="sd15-unet",
    kind="denoiser",
    library_class="UNet2DConditionModel",
    config={**_SD_UNET_COMMON, "attention_head_dim": 8, "cross_attention_dim": 768, "sample_size": 64},
    source="https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/blob/main/unet/config.json",
    description="SD 1.5 UNet (860 M)",
)

SD21_UNET = ComponentSpec(
    name="sd21-unet",
    kind="denoiser",
    library_class="UNet2DConditionModel",
    config={
        **_SD_UNET_COMMON,
        "attention_head_dim": [5, 10, 20, 20],
        "cross_attention_dim": 1024,
        "dual_cross_attention": False,
        "num_class_embeds": None,
        "only_cross_attention": False,
        "resnet_time_scale_shift": "default",
        "sample_size": 96,
        "upcast_attention": True,
        "use_linear_projection": True,
    },
    source="https://huggingface.co/stabilityai/stable-diffusion-2-1/blob/main/unet/config.json",
    description="SD 2.1 UNet (866 M, v-prediction, linear projections)",
)

SDXL_UNET = ComponentSpec(
    name="sdxl-unet",
    kind="denoiser",
    library_class="UNet2DConditionModel",
    config={
        "act_fn": "silu",
        "addition_embed_type": "text_time",
        "addition_embed_type_num_heads": 64,
        "addition_time_embed_dim": 256,
        "attention_head_dim": [5, 10, 20],
        "block_out_channels": [320, 640, 1280],
        "center_input_sample": False,
        "class_embed_type": None,
        "class_embeddings_concat": False,
        "conv_in_kernel": 3,
        "conv_out_kernel": 3,
        "cross_attention_dim": 2048,
        "cross_attention_norm": None,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "downsample_padding": 1,
        "dual_cross_attention": False,
        "encoder_hid_dim": None,
        "encoder_hid_dim_type": None,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "in_channels": 4,
        "layers_per_block": 2,
        "mid_block_only_cross_attention": None,
        "mid_block_scale_factor": 1,
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "norm_eps": 1e-05,
        "norm_num_groups": 32,
        "num_attention_heads": None,
        "num_class_embeds": None,
        "only_cross_attention": False,
        "out_channels": 4,
        "projection_class_embeddings_input_dim": 2816,
        "resnet_out_scale_factor": 1.0,
        "resnet_skip_time_act": False,
        "resnet_time_scale_shift": "default",
        "sample_size": 128,
        "time_cond_proj_dim": None,
        "time_embedding_act_fn": None,
        "time_embedding_dim": None,
        "time_embedding_type": "positional",
        "timestep_post_act": None,
        "transformer_layers_per_block": [1, 2, 10],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "upcast_attention": None,
        "use_linear_projection": True,
    },
    source="https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/blob/main/unet/config.json",
    description="SDXL base UNet (2.6 B; pooled-text and size/crop conditioning)",
)

TINY_UNET = ComponentSpec(
    name="tiny-unet",
    kind="denoiser",
    library_class="UNet2DConditionModel",
    config={
        "block_out_channels": [32, 64],
        "layers_per_block": 2,
        "sample_size": 32,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
        "cross_attention_dim": 32,
    },
    source="diffusers tests/pipelines/stable_diffusion/test_stable_diffusion.py (get_dummy_components)",
    description="tiny UNet for tests",
)

TINY_XL_UNET = ComponentSpec(
    name="tiny-xl-unet",
    kind="denoiser",
    library_class="UNet2DConditionModel",
    config={
        **TINY_UNET.config,
        "attention_head_dim": [2, 4],
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 8,
        "transformer_layers_per_block": [1, 2],
        # 6 size/crop ids x 8 + 32 pooled text width
        "projection_class_embeddings_input_dim": 80,
        "cross_attention_dim": 64,
        "norm_num_groups": 1,
    },
    source="diffusers tests/pipelines/stable_diffusion_xl/test_stable_diffusion_xl.py (get_dummy_components)",
    description="tiny SDXL-style UNet (text_time conditioning) for tests",
)

UNETS = (SD15_UNET, SD21_UNET, SDXL_UNET, TINY_UNET, TINY_XL_UNET)


# BK-SDM (Kim et al., 2023): blocks removed from the SD v1.4 UNet (the same architecture as v1.5's).
_BK_SDM_SOURCE = "https://github.com/Nota-NetsPresso/BK-SDM/blob/main/src/unet_config/{}/config.json"
_BK_COMMON = {
    **_SD_UNET_COMMON,
    "attention_head_dim": 8,
    "cross_attention_dim": 768,
    "sample_size": 64,
    "layers_per_block": 1,
    "upcast_attention": False,
    "use_linear_projection": False,
}

BK_SDM_BASE = ComponentSpec(
    name="bk-sdm-base",
    kind="denoiser",
    library_class="UNet2DConditionModel",
    config={**_BK_COMMON, "mid_block_type": "UNetMidBlock2DCrossAttn"},
    source=_BK_SDM_SOURCE.format("bk_base"),
    description="BK-SDM-Base UNet: one block fewer per stage (0.58 B)",
)
BK_SDM_SMALL = ComponentSpec(
    name="bk-sdm-small",
    kind="denoiser",
    library_class="UNet2DConditionModel",
    config={**_BK_COMMON, "mid_block_type": None},
    source=_BK_SDM_SOURCE.format("bk_small"),
    description="BK-SDM-Small UNet: Base without the mid block (0.48 B)",
)
BK_SDM_TINY = ComponentSpec(
    name="bk-sdm-tiny",
    kind="denoiser",
    library_class="UNet2DConditionModel",
    config={
        **_BK_COMMON,
        "mid_block_type": None,
        "block_out_channels": [320, 640, 1280],
        "down_block_types": ["CrossAttnDownBlock2D"] * 3,
        "up_block_types": ["CrossAttnUpBlock2D"] * 3,
    },
    source=_BK_SDM_SOURCE.format("bk_tiny"),
    description="BK-SDM-Tiny UNet: Small without the innermost stage (0.32 B)",
)


def scaled_sd15_unet(width: float, layers: int) -> ComponentSpec:
    """The SD 1.5 UNet with every channel count times ``width`` (rounded to 32) and ``layers`` per block."""
    channels = [max(32, round(c * width / 32) * 32) for c in SD15_UNET.config["block_out_channels"]]
    return ComponentSpec(
        name=f"sd15-unet-w{width:g}-l{layers}",
        kind="denoiser",
        library_class="UNet2DConditionModel",
        config={**SD15_UNET.config, "block_out_channels": channels, "layers_per_block": layers},
        source=f"derived from {SD15_UNET.source}: block_out_channels x {width:g} (multiples of 32), "
        f"layers_per_block {layers}",
        description=f"SD 1.5 UNet scaled: width x{width:g}, {layers} layer(s) per block",
    )


# (width 1, 1 layer per block) is BK-SDM-Base exactly, so it is not repeated here.
SCALED_UNETS = tuple(scaled_sd15_unet(w, n) for w, n in ((0.5, 2), (0.75, 2), (1.25, 2), (0.75, 1), (0.5, 1)))
UNETS = (*UNETS, BK_SDM_BASE, BK_SDM_SMALL, BK_SDM_TINY, *SCALED_UNETS)


# --- named shapes: the published pipelines, plus tiny ones for tests ---

# Keys that EulerDiscreteScheduler reads; values from each model's scheduler_config.json.
_SD_BETAS = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}

SD15 = ShapeSpec(
    name="sd15",
    year=2022,
    text_encoder="clip-vit-l-14",
    denoiser="sd15-unet",
    vae="sd-vae",
    scheduler={**_SD_BETAS, "prediction_type": "epsilon", "steps_offset": 1},
    native_resolution=512,
    description="Stable Diffusion v1.5",
    source="https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5",
)

SD21 = ShapeSpec(
    name="sd21",
    year=2022,
    text_encoder="openclip-vit-h-14",
    denoiser="sd21-unet",
    vae="sd21-vae",
    scheduler={**_SD_BETAS, "prediction_type": "v_prediction", "steps_offset": 1},
    native_resolution=768,
    description="Stable Diffusion v2.1 (768, v-prediction)",
    source="https://huggingface.co/stabilityai/stable-diffusion-2-1",
)

SDXL = ShapeSpec(
    name="sdxl",
    year=2023,
    text_encoder="sdxl-clip-l+bigg",
    denoiser="sdxl-unet",
    vae="sdxl-vae",
    scheduler={
        **_SD_BETAS,
        "prediction_type": "epsilon",
        "steps_offset": 1,
        "timestep_spacing": "leading",
        "interpolation_type": "linear",
        "use_karras_sigmas": False,
    },
    native_resolution=1024,
    guidance_scale=5.0,  # StableDiffusionXLPipeline's default
    description="Stable Diffusion XL base 1.0",
    source="https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0",
)

TINY = ShapeSpec(
    name="tiny",
    text_encoder="tiny-clip",
    denoiser="tiny-unet",
    vae="tiny-vae",
    scheduler={**_SD_BETAS, "prediction_type": "epsilon", "steps_offset": 1},
    native_resolution=64,
    description="tiny SD-1.x-like shape for tests (seconds on a CPU)",
    source="diffusers pipeline tests",
    tags=("test",),
)

TINY_XL = ShapeSpec(
    name="tiny-xl",
    text_encoder="tiny-xl-clip-pair",
    denoiser="tiny-xl-unet",
    vae="tiny-vae",
    scheduler=SDXL.scheduler,
    native_resolution=64,
    description="tiny SDXL-like shape (two encoders, pooled + size conditioning) for tests",
    source="diffusers SDXL pipeline tests",
    tags=("test",),
)

SHAPES = (SD15, SD21, SDXL, TINY, TINY_XL)

DENOISERS = UNETS
