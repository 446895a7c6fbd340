"""TensorRT logic that needs no TensorRT: flags, profiles, engine cache parts, and the error path."""

from __future__ import annotations

import pytest

from sdshape.backends import get_backend
from sdshape.backends.cache import ArtifactSlot
from sdshape.backends.trt import INSTALL_HINT, builder_flags, engine_parts, profile_shapes
from sdshape.cli import main


def test_builder_flags_per_precision():
    assert builder_flags("fp32") == []
    assert builder_flags("fp16") == ["FP16"]
    assert builder_flags("bf16") == ["BF16"]


def test_profile_for_dynamic_batch_under_cfg():
    network = {"sample": (-1, 4, 64, 64), "timestep": (), "encoder_hidden_states": (-1, 77, 768)}
    calls = {"sample": (8, 4, 64, 64), "timestep": (), "encoder_hidden_states": (8, 77, 768)}
    profile = profile_shapes(network, calls, rows_per_image=2)
    assert profile == {
        "sample": ((2, 4, 64, 64), (8, 4, 64, 64), (8, 4, 64, 64)),
        "encoder_hidden_states": ((2, 77, 768), (8, 77, 768), (8, 77, 768)),
    }


def test_static_inputs_need_no_profile_and_ranks_must_match():
    assert profile_shapes({"latents": (1, 4, 64, 64)}, {"latents": (1, 4, 64, 64)}, rows_per_image=1) == {}
    with pytest.raises(ValueError, match="rank"):
        profile_shapes({"latents": (-1, 4, 64)}, {"latents": (1, 4, 64, 64)}, rows_per_image=1)


def test_engine_cache_keys_change_with_precision_version_and_driver(tmp_path):
    slot = ArtifactSlot(tmp_path, {"component": "c", "gpu": "RTX 4090", "driver": "550.54"})
    base = slot.entry("tensorrt", engine_parts("onnxkey", "fp16", "10.3.0")).directory
    assert slot.entry("tensorrt", engine_parts("onnxkey", "fp16", "10.3.0")).directory == base
    assert slot.entry("tensorrt", engine_parts("onnxkey", "bf16", "10.3.0")).directory != base
    assert slot.entry("tensorrt", engine_parts("onnxkey", "fp16", "10.4.0")).directory != base
    assert slot.entry("tensorrt", engine_parts("otherkey", "fp16", "10.3.0")).directory != base
    other_driver = ArtifactSlot(tmp_path, {"component": "c", "gpu": "RTX 4090", "driver": "560.1"})
    assert other_driver.entry("tensorrt", engine_parts("onnxkey", "fp16", "10.3.0")).directory != base


def test_without_tensorrt_the_backend_says_why():
    ok, reason = get_backend("tensorrt").available()
    assert not ok and reason == INSTALL_HINT


def test_choosing_tensorrt_without_it_exits_2(capsys):
    assert main(["run", "--shape", "tiny", "--backend", "tensorrt"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "backend 'tensorrt' is not available here: tensorrt is not installed" in err
