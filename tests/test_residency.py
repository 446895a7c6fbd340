"""Residency policies in runs (`sdshape run --policy`): diffusers' and accelerate's own hooks on each component,
wired and parity-checked on the CPU (where the offload device is the compute device, so nothing moves), and
the policies that need a GPU refused in one line."""

from __future__ import annotations

import json

import pytest
import torch

from sdshape.cli import main

CPU_POLICIES = ["model_offload", "sequential_offload", "group_offload_block", "group_offload_leaf",
                "text_encoders_dropped"]  # fmt: skip


def run_json(tmp_path, monkeypatch, *argv: str) -> dict[str, dict]:
    monkeypatch.setenv("SDSHAPE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out.json"
    assert main(["run", "--device", "cpu", "--steps", "2", "--rounds", "1", "--warmup", "0", "--json", str(out),
                 *argv]) == 0  # fmt: skip
    return {b["extra_info"]["stage"]: b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]}


@pytest.mark.parametrize("policy", CPU_POLICIES)
def test_every_policy_the_cpu_allows_runs_with_the_libraries_hooks_and_is_parity_checked(policy, tmp_path, monkeypatch):
    rows = run_json(tmp_path, monkeypatch, "--shape", "tiny", "--policy", policy)
    for stage, row in rows.items():
        assert row["status"] == "ok" and row["parity"]["ok"], (stage, row["parity"])
        assert row["policy"] == policy and row["vae_tiling"] is False
        assert row["memory"]["host_rss_peak_bytes"] > 0  # offload keeps the weights in host memory: recorded


def test_the_hooks_are_the_libraries_own(monkeypatch):
    from sdshape.models.build import build_shape
    from sdshape.models.quantize import library_models
    from sdshape.models.zoo import get_shape
    from sdshape.run.residency import install

    def built():
        return build_shape(get_shape("tiny-flux"), torch.device("cpu"), torch.float32, 0, None, torch.float32, None)

    shape = built()
    model_offload = install(shape.modules, "model_offload", torch.device("cpu"))
    # chained in pipeline order, as enable_model_cpu_offload chains FLUX's components
    assert [name.split("(")[1][:-1] for name in model_offload.installed] == [
        "CLIPTextModel", "T5EncoderModel", "FluxTransformer2DModel", "AutoencoderKL"]  # fmt: skip
    assert all(hasattr(m, "_hf_hook") for m in library_models(shape.modules["denoiser"]))
    shape = built()
    grouped = install(shape.modules, "group_offload_block", torch.device("cpu"), vae_tiling=True, vae_slicing=True)
    transformer = library_models(shape.modules["denoiser"])[0]
    assert transformer.transformer_blocks[0]._diffusers_hook.get_hook("group_offloading") is not None
    vae = library_models(shape.modules["vae"])[0]
    assert vae.use_tiling and vae.use_slicing and "block_level" in " ".join(grouped.installed)
    assert grouped.resident_bytes({"text_encoder": 5, "denoiser": 7, "vae": 3}) == 0


def test_a_tiled_sliced_decode_is_recorded_and_still_matches(tmp_path, monkeypatch):
    rows = run_json(tmp_path, monkeypatch, "--shape", "tiny", "--vae-tiling", "--vae-slicing", "--batch", "2")
    decode = rows["vae_decode"]
    assert decode["status"] == "ok" and decode["parity"]["ok"] and decode["vae_tiling"] and decode["vae_slicing"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--policy", "swap"], "unknown policy 'swap'; valid choices: all_resident, text_encoders_dropped"),
        (["--policy", "group_offload_leaf_stream"], "--policy group_offload_leaf_stream needs a CUDA GPU"),
        (["--policy", "model_offload", "--backend", "onnxruntime"], "backend onnxruntime runs its own copy"),
    ],
)
def test_a_policy_that_cannot_run_here_is_one_line_and_exit_2(argv, message, capsys):
    assert main(["run", "--shape", "tiny", "--device", "cpu", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.gpu
@pytest.mark.parametrize("policy", ["model_offload", "sequential_offload", "group_offload_block",
                                    "group_offload_block_stream", "group_offload_leaf_stream",
                                    "text_encoders_dropped"])  # fmt: skip
def test_every_policy_runs_on_a_gpu_and_moves_weights(policy, tmp_path, monkeypatch):
    monkeypatch.setenv("SDSHAPE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out.json"
    assert main(["run", "--shape", "tiny", "--device", "cuda", "--steps", "2", "--rounds", "2", "--policy", policy,
                 "--json", str(out)]) == 0  # fmt: skip
    rows = {b["extra_info"]["stage"]: b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]}
    assert all(row["status"] == "ok" and row["policy"] == policy for row in rows.values())
