"""VAE configs (diffusers AutoencoderKL), field by field from the published files."""

from __future__ import annotations

from sdshape.models.specs import ComponentSpec

_SD_VAE_COMMON = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    # The SD 1.x/2.x configs predate the field, and their pipelines decode in the run's precision; diffusers'
    # default (True) would read as "upcast", which only SDXL's pipeline does (its VAE overflows in fp16).
    "force_upcast": False,
}

SD_VAE = ComponentSpec(
    name="sd-vae",
    kind="vae",
    library_class="AutoencoderKL",
    config={**_SD_VAE_COMMON, "sample_size": 512, "scaling_factor": 0.18215},
    source="https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/blob/main/vae/config.json",
    description="SD 1.x/2.x KL autoencoder, f=8, 4 latent channels",
)

SD21_VAE = ComponentSpec(
    name="sd21-vae",
    kind="vae",
    library_class="AutoencoderKL",
    config={**_SD_VAE_COMMON, "sample_size": 768, "scaling_factor": 0.18215},
    source="https://huggingface.co/stabilityai/stable-diffusion-2-1/blob/main/vae/config.json",
    description="SD 2.1 KL autoencoder (the SD architecture, 768 sample size)",
)

SDXL_VAE = ComponentSpec(
    name="sdxl-vae",
    kind="vae",
    library_class="AutoencoderKL",
    config={**_SD_VAE_COMMON, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True},
    source="https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/blob/main/vae/config.json",
    description="SDXL KL autoencoder (same architecture, retrained; overflows in fp16)",
)

TINY_VAE = ComponentSpec(
    name="tiny-vae",
    kind="vae",
    library_class="AutoencoderKL",
    config={
        "block_out_channels": [8, 16, 32, 32],
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "latent_channels": 4,
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "sample_size": 64,
        "force_upcast": False,  # decoded in the run's precision, as SD's VAE
    },
    source="diffusers tests (dummy AutoencoderKL), with four levels so the latent factor is 8 as in SD",
    description="tiny VAE for tests (f=8 like SD)",
)

VAES = (SD_VAE, SD21_VAE, SDXL_VAE, TINY_VAE)

TAESD = ComponentSpec(
    name="taesd",
    kind="vae",
    library_class="AutoencoderTiny",
    config={
        "in_channels": 3,
        "out_channels": 3,
        "encoder_block_out_channels": [64, 64, 64, 64],
        "decoder_block_out_channels": [64, 64, 64, 64],
        "act_fn": "relu",
        "latent_channels": 4,
        "upsampling_scaling_factor": 2,
        "num_encoder_blocks": [1, 3, 3, 3],
        "num_decoder_blocks": [3, 3, 3, 1],
        "latent_magnitude": 3,
        "latent_shift": 0.5,
        "force_upcast": False,
        "scaling_factor": 1.0,
    },
    source="https://huggingface.co/madebyollin/taesd/blob/main/config.json",
    description="TAESD tiny autoencoder (diffusers AutoencoderTiny) for SD 1.x/2.x latents",
)

VAES = (*VAES, TAESD)
