"""Static costs: FLOPs on the meta device and the inspect report."""

from __future__ import annotations

from sdshape.models.call_inputs import call_shapes
from sdshape.models.flops import flops_per_call
from sdshape.models.inspection import inspect_shape
from sdshape.models.zoo import get_shape, shape_components


def test_sd15_flops_per_call_at_512():
    specs = shape_components(get_shape("sd15"))
    flops = flops_per_call(specs, call_shapes(specs, batch=1, resolution=512))
    # SD 1.5 VAE decode at 512x512 is about 1.26 TMAC; the UNet about 0.4 TMAC per latent row (x2 under CFG).
    assert 2.4e12 < flops["vae"] < 2.6e12
    assert 1.5e12 < flops["denoiser"] < 1.7e12
    assert 2.0e10 < flops["text_encoder"] < 3.0e10


def test_inspect_report_arithmetic():
    report = inspect_shape(get_shape("sd15"), resolution=512, steps=30)
    stages = report["stages"]
    assert set(stages) == {"text_encoder", "denoise_loop", "vae_decode"}
    for stage in stages.values():
        assert stage["flops_per_image"] == stage["flops_per_call"] * stage["calls_per_image"]
        assert stage["weight_bytes"]["fp16"] * 2 == stage["weight_bytes"]["fp32"]
    assert stages["denoise_loop"]["calls_per_image"] == 30
    assert stages["denoise_loop"]["call_inputs"]["sample"] == [2, 4, 64, 64]
    assert stages["vae_decode"]["call_inputs"]["latents"] == [1, 4, 64, 64]
    assert stages["vae_decode"]["params_executed"] < stages["vae_decode"]["params"]
    assert report["total"]["params"] == 1_066_235_307
    assert abs(sum(s["param_share"] for s in stages.values()) - 1) < 1e-9


def test_sdxl_unet_inputs_carry_pooled_text_and_time_ids():
    specs = shape_components(get_shape("sdxl"))
    shapes = call_shapes(specs, batch=2, resolution=1024)
    assert shapes.denoiser["encoder_hidden_states"] == (4, 77, 2048)
    assert shapes.denoiser["text_embeds"] == (4, 1280)
    assert shapes.denoiser["time_ids"] == (4, 6)
    assert shapes.vae["latents"] == (2, 4, 128, 128)
