"""Runs in the weight formats consumer users run (fp8 storage, int8 weight-only, NF4, GGUF), parity-checked
against eager fp32 like every backend, with the bytes each format really stores."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from torch import nn

from sdshape.cli import main
from sdshape.core.vocabulary import PRECISIONS
from sdshape.models.quantize import logical_numel, quantize, stored_nbytes

GGUF_FORMATS = ("gguf-q8_0", "gguf-q5_k", "gguf-q4_k", "gguf-q4_0")


def run_rows(shape: str, precision: str, tmp_path, monkeypatch) -> dict[str, dict]:
    """Each stage's row of ``sdshape run`` on the CPU, 2 steps, one round."""
    monkeypatch.setenv("SDSHAPE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out.json"
    argv = ["run", "--shape", shape, "--device", "cpu", "--precision", precision, "--steps", "2", "--rounds", "1",
            "--warmup", "0", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    return {b["extra_info"]["stage"]: b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]}


def build(shape: str, kind: str, storage: str | None) -> nn.Module:
    """A tiny shape's component with random weights (seed 0), stored in ``storage``."""
    from sdshape.models.build import build_random
    from sdshape.models.families import family_of
    from sdshape.models.zoo import get_component, get_shape

    components = get_shape(shape).components()
    spec, family = get_component(components[kind]), family_of(get_component(components["denoiser"]))
    return build_random(spec, torch.device("cpu"), torch.bfloat16, family=family, storage=storage)


@pytest.mark.parametrize(
    "precision", ["fp8", pytest.param("int8", marks=pytest.mark.slow), pytest.param("nf4", marks=pytest.mark.slow)]
)
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


# About 10-20 s each on 2 cores; Q5_K's run takes the same path as Q4_K's (its packing has its own fast tests).
# Each block kind once (32-block Q8_0 and Q4_0, 256-block Q4_K), on three families; Q5_K's packing is held by
# the block tests below.
GGUF_RUNS = [
    ("tiny", "gguf-q4_k"),
    pytest.param("tiny-flux", "gguf-q8_0", marks=pytest.mark.slow),
    pytest.param("tiny-sd3", "gguf-q4_0", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("shape, precision", GGUF_RUNS)
def test_a_gguf_run_is_parity_checked_and_stores_exact_blocks(shape, precision, tmp_path, monkeypatch):
    """The denoiser's Linear layers become diffusers' GGUFLinear; the run's parity holds within the format's
    tolerance and its stored bytes are the blocks' (GGML_QUANT_SIZES) plus the bf16 rest; the encoders stay bf16.
    tiny's UNet has 256-wide rows (ff.net.2), so the K-quants store some of its layers in Q4_K and Q5_K."""
    gguf = pytest.importorskip("gguf")
    rows = run_rows(shape, precision, tmp_path, monkeypatch)
    for stage, row in rows.items():
        assert row["status"] == "ok" and row["parity"]["ok"], (stage, row["parity"])
        assert row["parity"]["tolerance_rel_l2"] == PRECISIONS[precision].parity_tolerance
    loop = rows["denoise_loop"]
    assert loop["parity"]["rel_l2"] > 1e-3
    denoiser = build(shape, "denoiser", precision)
    blocks = [p for p in denoiser.parameters() if getattr(p, "quant_type", None) is not None]
    assert blocks and all(p.quant_type.name == precision.removeprefix("gguf-").upper() for p in blocks)
    exact = 0
    for p in blocks:
        elements, nbytes = gguf.GGML_QUANT_SIZES[p.quant_type]
        assert p.dtype == torch.uint8 and p.numel() == logical_numel(p) // elements * nbytes  # the bytes held
        exact += p.numel()
    rest = [t for t in [*denoiser.parameters(), *denoiser.buffers()] if getattr(t, "quant_type", None) is None]
    assert loop["memory"]["weights_bytes"] == exact + sum(t.numel() * t.element_size() for t in rest)
    assert all(t.dtype == torch.bfloat16 for t in rest if t.is_floating_point())
    assert loop["params"] == sum(logical_numel(p) for p in denoiser.parameters())
    text = rows["text_encoder"]
    assert text["memory"]["weights_bytes"] >= 2 * text["params"]  # a GGUF file holds the denoiser only


@pytest.mark.parametrize("precision", ["gguf-q8_0", "gguf-q4_0"])
def test_gguf_blocks_are_gguf_own_quantizer_output_in_the_layers_a_checkpoint_quantizes(precision):
    """Each quantized weight is exactly what gguf's quantizer writes for the float32 weight; FLUX's embedders
    and final layer stay bf16 Linear, as city96's converter leaves them in the GGUF files diffusers loads."""
    gguf = pytest.importorskip("gguf")
    plain = dict(build("tiny-flux", "denoiser", None).named_modules())
    stored = build("tiny-flux", "denoiser", precision)
    quant = gguf.GGMLQuantizationType[precision.removeprefix("gguf-").upper()]
    kept = set()
    for name, layer in stored.named_modules():
        if type(layer).__name__ == "GGUFLinear":
            expected = gguf.quants.quantize(plain[name].weight.detach().float().numpy(), quant)
            assert layer.weight.quant_type == quant and (layer.weight.as_tensor().numpy() == expected).all(), name
            assert layer.compute_dtype == torch.bfloat16 and layer.bias.dtype == torch.bfloat16
        elif isinstance(layer, nn.Linear):
            assert layer.weight.dtype == torch.bfloat16
            kept.add(name.removeprefix("transformer."))
    embedders = {f"time_text_embed.{e}_embedder.linear_{i}" for e in ("timestep", "guidance", "text") for i in (1, 2)}
    assert kept == {"x_embedder", "context_embedder", "norm_out.linear", "proj_out", *embedders}


def test_a_k_quant_stores_only_rows_of_whole_256_blocks():
    """A row that is not whole 256-blocks stays bf16 (the GGUF converter writes it in F16); tiny's 256-wide
    rows are Q4_K blocks gguf's own dequantizer reads back close to the weights."""
    gguf = pytest.importorskip("gguf")
    import numpy as np

    plain = dict(build("tiny", "denoiser", None).named_modules())
    quantized = {n: m for n, m in build("tiny", "denoiser", "gguf-q4_k").named_modules() if hasattr(m, "compute_dtype")}
    assert quantized and all(plain[n].in_features % 256 == 0 for n in quantized)
    assert all(m.in_features % 256 for n, m in plain.items() if isinstance(m, nn.Linear) and n not in quantized
               and "time_embedding" not in n)  # fmt: skip
    for name, layer in quantized.items():
        weights = plain[name].weight.detach().float().numpy()
        back = gguf.quants.dequantize(layer.weight.as_tensor().numpy(), gguf.GGMLQuantizationType.Q4_K)
        assert np.linalg.norm(back - weights) / np.linalg.norm(weights) < 0.1, name


def test_a_gguf_format_without_gguf_is_a_one_line_usage_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf raises ImportError
    assert main(["run", "--shape", "tiny", "--device", "cpu", "--precision", "gguf-q4_k"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--precision gguf-q4_k needs gguf: pip install gguf") and len(err.splitlines()) == 1


@pytest.mark.parametrize("precision", ["int8", "nf4"])
def test_int8_and_nf4_leave_t5s_wo_unquantized_as_transformers_loads_it(precision):
    """T5's _keep_in_fp32_modules (wo) is in transformers' modules_to_not_convert; quantizing it to NF4 too made
    a tiny T5's output 1.1 off in relative L2 (0.23 with wo left out)."""
    pytest.importorskip("bitsandbytes" if precision == "nf4" else "torchao")
    encoder = build("tiny-pixart", "text_encoder", precision)
    layers = dict(encoder.named_modules())
    wo = [m for n, m in layers.items() if n.endswith(".wo")]
    wi = [m for n, m in layers.items() if n.endswith(".wi") or n.endswith(".wi_0")]
    assert wo and all(type(m) is nn.Linear and type(m.weight) is nn.Parameter for m in wo)
    assert wi and all(type(m) is not nn.Linear or type(m.weight) is not nn.Parameter for m in wi)


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
