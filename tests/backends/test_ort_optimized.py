"""ONNX Runtime as its own Stable Diffusion tools run it: fused-op counts, the plain graph beside it,
the optimized graphs in the artifact cache, and the variants that need a GPU refused on the CPU."""

from __future__ import annotations

import json

import pytest
import torch

from sdshape.backends import ort_optimize, resolve
from sdshape.backends.cache import ArtifactSlot
from sdshape.cli import main
from sdshape.models.build import build_random
from sdshape.models.zoo import get_component

RUN = ["run", "--shape", "tiny", "--device", "cpu", "--steps", "1", "--rounds", "2", "--warmup", "0"]


def _tiny(kind: str):
    module = build_random(get_component(f"tiny-{kind}"), torch.device("cpu"), torch.float32)
    inputs = {
        "unet": (torch.randn(2, 4, 8, 8), torch.tensor(999.0), torch.randn(2, 77, 32)),
        "vae": (torch.randn(1, 4, 8, 8),),
        "clip": (torch.zeros(2, 77, dtype=torch.long),),
    }[kind]
    return module, inputs


@pytest.mark.slow
@pytest.mark.parametrize("gpu", [True, False], ids=["cuda-fusions", "cpu-fusions"])
def test_the_unet_is_fused_and_the_counts_are_recorded(gpu, tmp_path):
    module, inputs = _tiny("unet")
    slot = ArtifactSlot(tmp_path, {"component": "tiny-unet"})
    path, artifact = ort_optimize.ensure_optimized(module, inputs, slot, "fp16" if gpu else "fp32", gpu=gpu)
    note = next(n for n in artifact.notes if n.startswith("ORT transformer optimizer"))
    counts = json.loads((path.parent / "fusions.json").read_text())
    assert counts["SkipLayerNormalization"] > 0 and counts["MultiHeadAttention"] > 0
    if gpu:  # the CUDA provider's fusions: group norms, channels-last convolutions, split GELU, bias add
        assert counts["GroupNorm"] > 0 and counts["NhwcConv"] > 0 and counts["BiasSplitGelu"] > 0
        assert any("converted to fp16" in n for n in artifact.notes)
    else:  # none of those has a CPU kernel
        assert counts["GroupNorm"] == counts["NhwcConv"] == counts["BiasSplitGelu"] == 0
    assert f"MultiHeadAttention: {counts['MultiHeadAttention']}" in note
    assert any("TorchScript exporter, opset 17" in n for n in artifact.notes)


def test_a_model_whose_fusions_do_not_apply_says_so(tmp_path):
    module, inputs = _tiny("vae")
    _, artifact = ort_optimize.ensure_optimized(module, inputs, ArtifactSlot(tmp_path, {"c": "vae"}), "fp32", gpu=False)
    assert any("fused nothing" in note for note in artifact.notes)


@pytest.mark.slow
def test_optimized_graphs_are_cached_checked_and_rebuilt(tmp_path):
    module, inputs = _tiny("unet")
    slot = ArtifactSlot(tmp_path, {"component": "tiny-unet"})
    path, first = ort_optimize.ensure_optimized(module, inputs, slot, "fp32", gpu=False)
    _, second = ort_optimize.ensure_optimized(module, inputs, slot, "fp32", gpu=False)
    assert first.cache == "built" and second.cache == "reused"
    assert [n for n in second.notes if "optimizer" in n] == [n for n in first.notes if "optimizer" in n]
    data = path.parent / "model.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 64] = b"\x7f" * 64  # same size, other bytes
    data.write_bytes(bytes(raw))
    _, third = ort_optimize.ensure_optimized(module, inputs, slot, "fp32", gpu=False)
    assert third.cache == "built" and any("corrupt: rebuilt" in note for note in third.notes)


def test_the_sdxl_vae_stays_fp32_as_ort_keeps_it():
    from sdshape.models.build import meta_module

    assert ort_optimize.keeps_fp32(meta_module(get_component("sdxl-vae")))
    assert not ort_optimize.keeps_fp32(meta_module(get_component("sd-vae")))
    assert not ort_optimize.keeps_fp32(_tiny("vae")[0])


def test_fusion_options_follow_ort():
    unet16 = ort_optimize.fusion_options("unet", gpu=True, fp16=True)
    unet32 = ort_optimize.fusion_options("unet", gpu=True, fp16=False)
    assert unet16.enable_packed_qkv and unet16.enable_packed_kv and unet16.group_norm_channels_last
    assert not unet32.enable_packed_qkv and not unet32.enable_packed_kv  # packed only for fp16, as ORT does
    cpu = ort_optimize.fusion_options("unet", gpu=False, fp16=False)
    assert not any(getattr(cpu, name) for name in ort_optimize.CUDA_ONLY_FUSIONS)
    assert cpu.enable_attention and cpu.enable_skip_layer_norm


def test_the_variants_resolve_to_their_options():
    assert resolve("onnxruntime", {}, "cpu") == ("onnxruntime", "onnxruntime", {
        "ort_provider": "cpu", "optimize": True, "cuda_graph": False})  # fmt: skip
    assert resolve("onnxruntime:plain", {}, "cpu")[0] == "onnxruntime:plain"
    label, _, options = resolve("onnxruntime:cuda-graph", {}, "cuda")
    assert label == "onnxruntime:cuda-graph" and options["cuda_graph"] and options["ort_provider"] == "cuda"
    label, _, options = resolve("compile:tuned", {}, "cuda")
    assert label == "compile:tuned"
    assert options == {"compile_mode": "max-autotune", "channels_last": True, "fuse_qkv": True}
    assert resolve("eager:cudagraph", {}, "cuda")[2] == {"cuda_graph": True}


def test_the_new_variants_are_listed(capsys):
    assert main(["backends", "--json"]) == 0
    listing = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert {"plain", "cuda-graph", "cpu", "cuda", "tensorrt"} <= set(listing["onnxruntime"]["variants"])
    assert "tuned" in listing["compile"]["variants"] and listing["eager"]["variants"] == ["cudagraph"]
    assert {o["name"] for o in listing["onnxruntime"]["options"]} == {"ort_provider", "optimize", "cuda_graph"}


@pytest.mark.parametrize(
    "backend,expected",
    [
        ("onnxruntime:cuda-graph", "needs the CUDA provider on --device cuda"),
        ("onnxruntime:tensorrt", "does not match"),
    ],
)
def test_gpu_variants_on_the_cpu_are_one_line(backend, expected, capsys):
    assert main([*RUN, "--backend", backend]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and expected in err


@pytest.mark.slow
def test_ort_runs_on_its_own_weights_and_both_graphs_pass_parity(tmp_path):
    out = tmp_path / "ort.json"
    assert main([*RUN, "--backend", "eager,onnxruntime,onnxruntime:plain", "--json", str(out)]) == 0
    rows = {
        (b["extra_info"]["backend"], b["extra_info"]["stage"]): b["extra_info"]
        for b in json.loads(out.read_text())["benchmarks"]
    }
    for backend in ("onnxruntime", "onnxruntime:plain"):
        loop = rows[(backend, "denoise_loop")]
        assert loop["status"] == "ok" and loop["parity"]["ok"] and loop["parity"]["rel_l2"] < 1e-4
        # the torch modules were released: the resident weights are ORT's own files
        eager_weights = rows[("eager", "denoise_loop")]["memory"]["resident_weights_bytes"]
        assert loop["memory"]["resident_weights_bytes"] not in (None, eager_weights)
        # ORT maps its weight files: what of them was never paged in is measured, not owed by the host rule
        assert 0 <= loop["memory"]["weights_unpaged_bytes"] <= loop["memory"]["resident_weights_bytes"]
    assert rows[("eager", "denoise_loop")]["memory"]["weights_unpaged_bytes"] is None  # random weights: nothing mapped
    notes = rows[("onnxruntime", "denoise_loop")]["artifact"]["notes"]
    assert any("ORT transformer optimizer (unet, CPU fusions)" in n for n in notes)
    assert any(
        "plain: the dynamo exporter" in n for n in rows[("onnxruntime:plain", "denoise_loop")]["artifact"]["notes"]
    )


def test_the_fp32_export_holds_the_weights_and_nothing_the_size_of_an_attention_matrix(tmp_path):
    """Diffusers' classic attention adds baddbmm over torch.empty(batch x heads, tokens, tokens); constant
    folding made that a zero constant in the graph (392 MB more in SD 1.5's UNet at 256 px, 1 GiB a layer
    at 512 px). At 32x32 latents the tiny UNet's would be several times its 5.6 MB of weights. The
    exporter's one-file-per-tensor leftovers must not stay in the entry either."""
    module, _ = _tiny("unet")
    inputs = (torch.randn(2, 4, 32, 32), torch.tensor(999.0), torch.randn(2, 77, 32))
    slot = ArtifactSlot(tmp_path, {"component": "tiny-unet", "latents": 32})
    path, _ = ort_optimize.onnx_export.ensure_fp32_onnx(module, inputs, slot)
    weights = sum(p.numel() * 4 for p in module.parameters())
    exported = sum(f.stat().st_size for f in path.parent.iterdir() if f.name.startswith("model.onnx"))
    assert exported < weights * 1.1 + (256 << 10)
    assert {f.name for f in path.parent.iterdir() if f.is_file() and "model.onnx" in f.name} == {
        "model.onnx",
        "model.onnx.data",
    }
    assert not (path.parent / "export-scratch").exists()


def test_an_optimization_the_host_cannot_hold_is_refused_with_the_figures():
    """SD 1.5's fp32 UNet (3.20 GiB) took 16.45 GiB to optimize with the CPU fusions, and was killed at
    24.3 GiB with the CUDA ones: that must be a stage error with the figures, never the OOM killer."""
    graph = int(3.20 * (1 << 30))
    ort_optimize.check_host_memory(graph, gpu=False, available=20 << 30)
    with pytest.raises(RuntimeError, match=r"needs about 16.0 GiB .* 3.20 GiB fp32 graph \(CPU fusions\), and 12.0"):
        ort_optimize.check_host_memory(graph, gpu=False, available=12 << 30)
    with pytest.raises(RuntimeError, match=r"about 24.0 GiB .*CUDA fusions.*onnxruntime:plain"):
        ort_optimize.check_host_memory(graph, gpu=True, available=20 << 30)
