"""The toy Sana family's components and shape: diffusers' own Sana test configs, sized for sdshape's tests.

The denoiser and the VAE are those of diffusers ``tests/pipelines/sana/test_sana.py``
(``get_dummy_components``) with two blocks and widths matched to the tiny Gemma 2 (16 wide) instead of the
test's 8; the Gemma 2 config keeps that test's head size and takes a vocabulary sdshape's fixed prompts
fit in. The scheduler is the one Sana's conversion script (``scripts/convert_sana_to_diffusers.py``)
saves: DPM-Solver++ on flow sigmas, ``flow_shift`` 3.0 as for the 1024 px models.
"""

from __future__ import annotations

from sdshape.models.specs import ComponentSpec, ShapeSpec

TINY_GEMMA2 = ComponentSpec(
    name="tiny-gemma2",
    kind="text_encoder",
    library_class="Gemma2Model",
    config={
        "vocab_size": 64,
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,  # grouped-query attention, as gemma-2-2b (8 heads, 4 KV heads)
        "head_dim": 8,
        "query_pre_attn_scalar": 8,  # gemma-2-2b scales queries by its head size (256) too
        "max_position_embeddings": 512,
    },
    source="diffusers tests/pipelines/sana/test_sana.py (Gemma2Config), 2 layers, 16 wide, vocabulary 64",
    description="tiny Gemma 2 decoder for tests",
)

TINY_SANA = ComponentSpec(
    name="tiny-sana",
    kind="denoiser",
    library_class="SanaTransformer2DModel",
    config={
        "patch_size": 1,
        "in_channels": 4,
        "out_channels": 4,
        "num_layers": 2,
        "num_attention_heads": 2,
        "attention_head_dim": 8,
        "num_cross_attention_heads": 2,
        "cross_attention_head_dim": 8,
        "cross_attention_dim": 16,
        "caption_channels": 16,
        "sample_size": 32,
    },
    source="diffusers tests/pipelines/sana/test_sana.py (get_dummy_components), 2 blocks, 16 wide",
    description="tiny Sana linear-attention DiT for tests",
)

TINY_DC_AE = ComponentSpec(
    name="tiny-dc-ae",
    kind="vae",
    library_class="AutoencoderDC",
    config={
        "in_channels": 3,
        "latent_channels": 4,
        "attention_head_dim": 2,
        "encoder_block_types": ["ResBlock", "EfficientViTBlock"],
        "decoder_block_types": ["ResBlock", "EfficientViTBlock"],
        "encoder_block_out_channels": [8, 8],
        "decoder_block_out_channels": [8, 8],
        "encoder_qkv_multiscales": [[], [5]],
        "decoder_qkv_multiscales": [[], [5]],
        "encoder_layers_per_block": [1, 1],
        "decoder_layers_per_block": [1, 1],
        "downsample_block_type": "conv",
        "upsample_block_type": "interpolate",
        "decoder_norm_types": "rms_norm",
        "decoder_act_fns": "silu",
        "scaling_factor": 0.41407,
    },
    source="diffusers tests/pipelines/sana/test_sana.py (get_dummy_components)",
    description="tiny deep-compression autoencoder (2 levels) for tests",
)

SANA_DPM_SOLVER = {
    "num_train_timesteps": 1000,
    "solver_order": 2,
    "algorithm_type": "dpmsolver++",
    "prediction_type": "flow_prediction",
    "use_flow_sigmas": True,
    "flow_shift": 3.0,
}

TINY_SANA_SHAPE = ShapeSpec(
    name="tiny-sana",
    text_encoder=TINY_GEMMA2.name,
    denoiser=TINY_SANA.name,
    vae=TINY_DC_AE.name,
    scheduler=SANA_DPM_SOLVER,
    native_resolution=32,  # SanaPipeline takes sides divisible by 32
    steps=20,
    guidance_scale=4.5,
    description="tiny Sana shape (Gemma 2 with a complex human instruction, linear DiT, DC-AE) for tests",
    source="diffusers Sana pipeline tests",
    sequence_length=16,
    tags=("test",),
)

COMPONENTS = (TINY_GEMMA2, TINY_SANA, TINY_DC_AE)
SHAPES = (TINY_SANA_SHAPE,)
