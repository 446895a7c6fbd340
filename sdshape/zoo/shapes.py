"""Named shapes: the published pipelines, plus tiny ones for tests."""

from __future__ import annotations

from sdshape.zoo.specs import ShapeSpec

# Keys that EulerDiscreteScheduler reads; values from each model's scheduler_config.json.
_SD_BETAS = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}

SD15 = ShapeSpec(
    name="sd15",
    text_encoder="clip-vit-l-14",
    unet="sd15-unet",
    vae="sd-vae",
    scheduler={**_SD_BETAS, "prediction_type": "epsilon", "steps_offset": 1},
    native_resolution=512,
    description="Stable Diffusion v1.5",
    source="https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5",
)

SD21 = ShapeSpec(
    name="sd21",
    text_encoder="openclip-vit-h-14",
    unet="sd21-unet",
    vae="sd21-vae",
    scheduler={**_SD_BETAS, "prediction_type": "v_prediction", "steps_offset": 1},
    native_resolution=768,
    description="Stable Diffusion v2.1 (768, v-prediction)",
    source="https://huggingface.co/stabilityai/stable-diffusion-2-1",
)

SDXL = ShapeSpec(
    name="sdxl",
    text_encoder="sdxl-clip-l+bigg",
    unet="sdxl-unet",
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
    description="Stable Diffusion XL base 1.0",
    source="https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0",
)

TINY = ShapeSpec(
    name="tiny",
    text_encoder="tiny-clip",
    unet="tiny-unet",
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
    unet="tiny-xl-unet",
    vae="tiny-vae",
    scheduler=SDXL.scheduler,
    native_resolution=64,
    description="tiny SDXL-like shape (two encoders, pooled + size conditioning) for tests",
    source="diffusers SDXL pipeline tests",
    tags=("test",),
)

SHAPES = (SD15, SD21, SDXL, TINY, TINY_XL)
