"""Runs in the weight formats consumer users run (fp8 storage, int8 weight-only, NF4), parity-checked
against eager fp32 like every backend, with the bytes each format really stores."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from sdshape.cli import main
from sdshape.core.vocabulary import PRECISIONS
from sdshape.models.quantize import logical_numel, quantize, stored_nbytes


@pytest.mark.parametrize("precision", ["fp8", "int8", "nf4"])
def test_a_quantized_run_is_parity_checked_and_stores_fewer_bytes(precision, tmp_path, monkeypatch):
    monkeypatch.setenv("SDSHAPE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out.json"
    argv = ["run", "--shape", "tiny", "--device", "cpu", "--precision", precision, "--steps", "2", "--rounds", "1",
            "--warmup", "0", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = {b["extra_info"]["stage"]: b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]}
    tolerance = PRECISIONS[precision].parity_tolerance
    for stage, row in rows.items():
        assert row["status"] == "ok" and row["parity"]["ok"], (stage, row["parity"])
        assert row["parity"]["tolerance_rel_l2"] == tolerance
    assert rows["denoise_loop"]["parity"]["rel_l2"] > 1e-3  # the format's error is there, and shown
    loop = rows["denoise_loop"]
    assert loop["memory"]["weights_bytes"] < 2 * loop["params"]  # below bf16, scales included
    assert rows["vae_decode"]["memory"]["weights_bytes"] == 2 * rows["vae_decode"]["params"]  # the VAE stays bf16


def test_stored_bytes_count_what_each_format_holds():
    linear = nn.Linear(256, 512).to(torch.bfloat16)
    params = 256 * 512 + 512
    nf4 = quantize(nn.Sequential(nn.Linear(256, 512).to(torch.bfloat16)), "nf4")[0]
    assert logical_numel(nf4.weight) == 256 * 512 and nf4.weight.numel() == 256 * 512 // 2
    assert stored_nbytes(nf4.weight) == 256 * 512 // 2 + (256 * 512 // 64) * 4 + 16 * 4  # data, absmax, code
    int8 = quantize(nn.Sequential(linear), "int8")[0]
    assert stored_nbytes(int8.weight) == 256 * 512 + 512 * 5  # int8 data; an fp32 scale and int8 zero point a row
    fp8 = quantize(nn.Sequential(nn.Linear(256, 512).to(torch.bfloat16)), "fp8")[0]
    assert sum(stored_nbytes(p) for p in fp8.parameters()) == params


def test_a_quantized_format_runs_eager_only(capsys):
    assert main(["run", "--shape", "tiny", "--device", "cpu", "--precision", "nf4", "--backend", "eager,compile"]) == 2
    assert "--precision nf4 runs with --backend eager only; not with compile" in capsys.readouterr().err


@pytest.mark.parametrize("shape", ["tiny-flux", "tiny-pixart", "tiny-sd3"])
def test_an_fp8_run_stores_the_layers_the_static_model_counts(shape):
    """Layerwise casting goes on each library model, so the skip patterns match as diffusers matches them
    (FLUX's top-level proj_out, PixArt's adaln_single stay bf16), in the run and in the static model alike."""
    from accelerate import init_empty_weights

    from sdshape.feasibility.formats import FORMATS, stored_weights
    from sdshape.models.build import build_random, instantiate, stage_module
    from sdshape.models.families import family_of
    from sdshape.models.zoo import get_component, get_shape

    spec = get_component(get_shape(shape).components()["denoiser"])
    run = build_random(spec, torch.device("cpu"), torch.bfloat16, family=family_of(spec), storage="fp8")
    stored = sum(stored_nbytes(t) for t in [*run.parameters(), *run.buffers()] if t.is_floating_point())
    with init_empty_weights(include_buffers=False):
        meta = stage_module(spec, instantiate, family_of(spec)).to(torch.bfloat16)
    assert stored == stored_weights(meta, FORMATS["fp8"]).bytes
    kept = [name for name, p in run.named_parameters() if p.dtype == torch.bfloat16 and "norm" not in name]
    assert kept, "no layer was kept at the compute dtype: the skip patterns matched nothing"


@pytest.mark.parametrize("shape, precision", [("tiny", "gguf-q8_0"), ("tiny-flux", "gguf-q4_k"),
                                               ("tiny-sd3", "gguf-q4_0"), ("tiny-pixart", "gguf-q5_k")])  # fmt: skip
def test_a_gguf_run_dequantizes_as_diffusers_does_and_is_parity_checked(shape, precision, tmp_path, monkeypatch):
    """The denoiser's Linear layers become diffusers' GGUFLinear over blocks packed by gguf (or, for the
    K-quants gguf cannot write, sdshape's packer, read back by gguf in the next test); the encoders stay bf16."""
    pytest.importorskip("gguf")
    monkeypatch.setenv("SDSHAPE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out.json"
    argv = ["run", "--shape", shape, "--device", "cpu", "--precision", precision, "--steps", "2", "--rounds", "1",
            "--warmup", "0", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = {b["extra_info"]["stage"]: b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]}
    for stage, row in rows.items():
        assert row["status"] == "ok" and row["parity"]["ok"], (stage, row["parity"])
    loop = rows["denoise_loop"]
    assert loop["parity"]["rel_l2"] > 1e-3 and loop["memory"]["weights_bytes"] < 2 * loop["params"]
    text = rows["text_encoder"]
    assert text["memory"]["weights_bytes"] >= 2 * text["params"]  # a GGUF file holds the denoiser only


def test_the_k_quant_packer_writes_blocks_gguf_reads_back():
    gguf = pytest.importorskip("gguf")
    import numpy as np

    from sdshape.models.kquants import quantize_k

    weights = np.random.default_rng(0).standard_normal((4, 512)).astype(np.float32)
    for bits, kind, limit in ((4, "Q4_K", 0.10), (5, "Q5_K", 0.05)):
        blocks = quantize_k(weights, bits)
        quant = gguf.GGMLQuantizationType[kind]
        assert blocks.shape == (4, 512 // 256 * gguf.GGML_QUANT_SIZES[quant][1])
        back = gguf.quants.dequantize(blocks, quant)
        assert np.linalg.norm(back - weights) / np.linalg.norm(weights) < limit  # a wrong layout is ~1.0


@pytest.mark.parametrize("precision", ["gguf-q8_0", "gguf-q4_k", "gguf-q5_k", "gguf-q4_0"])
def test_a_gguf_linear_runs_diffusers_dequantization_and_stores_exact_blocks(precision):
    pytest.importorskip("gguf")
    from sdshape.feasibility.formats import FORMATS, stored_weights

    torch.manual_seed(0)
    plain = nn.Sequential(nn.Sequential(nn.Linear(512, 256)))  # a wrapper holding one library model
    reference = plain[0][0].weight.detach().clone()
    x = torch.randn(3, 512)
    expected = x @ reference.t() + plain[0][0].bias.detach()
    meta = nn.Sequential(nn.Sequential(nn.Linear(512, 256))).to("meta", torch.bfloat16)
    layer = quantize(plain.to(torch.bfloat16), precision)[0][0]
    assert type(layer).__name__ == "GGUFLinear" and logical_numel(layer.weight) == 512 * 256
    got = layer(x.to(torch.bfloat16)).float()
    assert torch.linalg.norm(got - expected) / torch.linalg.norm(expected) < 0.15
    stored = sum(stored_nbytes(p) for p in layer.parameters())
    assert stored == stored_weights(meta, FORMATS[precision]).bytes  # the static model counts the same bytes
