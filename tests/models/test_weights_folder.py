"""Real weights: a tiny model saved with save_pretrained runs through `sdshape run --weights`."""

from __future__ import annotations

import json

import pytest
import torch

from sdshape.cli import main


@pytest.mark.slow
def test_run_with_saved_weights(tmp_path, tiny_session, capsys):
    built = tiny_session.built
    folder = tmp_path / "tiny-pipeline"
    built.text_encoder.encoders[0].save_pretrained(folder / "text_encoder")
    built.denoiser.unet.save_pretrained(folder / "unet")
    built.vae.vae.save_pretrained(folder / "vae")
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(built.scheduler_config))

    out = tmp_path / "weights.json"
    from sdshape.models.weights_folder import weights_native_resolution

    assert weights_native_resolution(folder) == 32 * 8  # unet sample_size x the VAE's 8x factor
    argv = ["run", "--weights", str(folder), "--device", "cpu", "--resolution", "64", "--steps", "2", "--rounds", "2"]
    assert main([*argv, "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    infos = {b["extra_info"]["stage"]: b["extra_info"] for b in doc["benchmarks"]}
    assert all(info["status"] == "ok" for info in infos.values())
    assert infos["pipeline"]["shape"] == "weights:tiny-pipeline"
    assert infos["pipeline"]["weights"] == str(folder)
    assert infos["pipeline"]["params"] == tiny_session.facts["pipeline"].params
    assert infos["denoise_loop"]["resolution"] == 64


def test_loaded_weights_are_the_saved_ones(tmp_path, tiny_session):
    from sdshape.models.weights_folder import load_weights

    built = tiny_session.built
    folder = tmp_path / "p"
    built.text_encoder.encoders[0].save_pretrained(folder / "text_encoder")
    built.denoiser.unet.save_pretrained(folder / "unet")
    built.vae.vae.save_pretrained(folder / "vae")
    loaded = load_weights(folder, torch.device("cpu"), torch.float32)
    for original, again in zip(built.denoiser.parameters(), loaded.denoiser.parameters(), strict=True):
        assert torch.equal(original, again)
    assert loaded.scheduler_config == {}


def test_an_sd3_pipeline_folder_loads_by_its_family_layout(tmp_path):
    """transformer/ and text_encoder, _2, _3/: the SD3 family's layout, read through its family."""
    from sdshape.models.build import build_shape
    from sdshape.models.families.sd3.family import JointText
    from sdshape.models.weights_folder import load_weights, weights_native_resolution
    from sdshape.models.zoo import get_shape

    built = build_shape(get_shape("tiny-sd3"), torch.device("cpu"), torch.float32)
    folder = tmp_path / "sd3"
    for encoder, sub in zip(
        built.text_encoder.encoders, ("text_encoder", "text_encoder_2", "text_encoder_3"), strict=True
    ):
        encoder.save_pretrained(folder / sub)
    built.denoiser.transformer.save_pretrained(folder / "transformer")
    built.vae.vae.save_pretrained(folder / "vae")
    assert weights_native_resolution(folder) == 8 * 8  # transformer sample_size x the VAE's 8x factor
    loaded = load_weights(folder, torch.device("cpu"), torch.float32)
    assert loaded.family.name == "sd3" and isinstance(loaded.text_encoder, JointText)
    assert [spec.library_class for spec in loaded.specs["text_encoder"].parts] == [
        "CLIPTextModelWithProjection", "CLIPTextModelWithProjection", "T5EncoderModel",
    ]  # fmt: skip
    for original, again in zip(built.denoiser.parameters(), loaded.denoiser.parameters(), strict=True):
        assert torch.equal(original, again)
