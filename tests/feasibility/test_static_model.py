"""The static model: the meta-device trace, weight formats, residency policies, the per-op roofline, and its
validation against the H100 allocator peaks and the public figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from sdshape.feasibility.catalog import load_catalog
from sdshape.feasibility.formats import FORMATS, stored_weights
from sdshape.feasibility.timing import ArchEfficiency, gpu_seconds, wave_fraction
from sdshape.feasibility.trace import ALLOCATOR_BLOCK, rounded, trace_call

ROOT = Path(__file__).resolve().parents[2]
H100 = ROOT / "tests" / "data" / "gpu-runs" / "2026-11-22-h100"


class TwoLinears(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(64, 256)
        self.b = nn.Linear(256, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


def meta(module: nn.Module, dtype: torch.dtype = torch.float16) -> nn.Module:
    return module.to(device="meta", dtype=dtype)


def test_the_trace_holds_live_tensors_as_the_caching_allocator_rounds_them():
    x = torch.zeros(3, 64, dtype=torch.float16, device="meta")
    trace = trace_call(meta(TwoLinears()), (x,))
    # a(x): 3x256 fp16 = 1536 B; relu: another 1536 B while a(x) is alive (the peak); a(x) dies when relu
    # returns, so b's 3x64 output (384 B, one 512 B block) sits beside relu's 1536 B only.
    assert trace.activation_peak_bytes == 1536 + 1536
    x = torch.zeros(3, 1024, dtype=torch.float16, device="meta")
    wide = trace_call(meta(nn.Sequential(nn.Linear(1024, 8), nn.Linear(8, 1024))), (x,))
    assert wide.activation_peak_bytes == 512 + 6144  # 48 B rounded up to a block, beside the 6 KiB output
    assert [op.kind for op in trace.ops] == ["gemm", "memory", "gemm"]
    assert trace.flops("gemm") == 2 * 3 * 64 * 256 * 2
    assert rounded(1) == ALLOCATOR_BLOCK and rounded(0) == 0 and rounded(1025) == 1536


def test_attention_is_traced_as_the_fused_kernel_not_the_score_matrix():
    q = torch.zeros(2, 8, 4096, 40, dtype=torch.float16, device="meta")

    class Attend(nn.Module):
        def forward(self, q: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.scaled_dot_product_attention(q, q, q)

    trace = trace_call(Attend(), (q,))
    scores = 2 * 8 * 4096 * 4096 * 2
    assert trace.activation_peak_bytes < scores / 10  # the output and its log-sum-exp, no 512 MiB of scores
    attention = [op for op in trace.ops if op.kind == "attention"]
    assert len(attention) == 1 and attention[0].padding == pytest.approx(40 / 64)  # a 40-wide head runs as 64


def test_weight_formats_store_what_each_library_stores():
    module = meta(TwoLinears(), torch.bfloat16)
    params = 64 * 256 + 256 + 256 * 64 + 64
    assert stored_weights(module, FORMATS["bf16"]).bytes == params * 2
    assert stored_weights(module, FORMATS["fp32"]).bytes == params * 4
    fp8 = stored_weights(module, FORMATS["fp8"])
    assert fp8.bytes == params and fp8.transient_bytes == (64 * 256 + 256) * 2  # the larger layer upcast
    int8 = stored_weights(module, FORMATS["int8"])
    assert int8.bytes == 2 * 64 * 256 + (256 + 64) * 5 + (256 + 64) * 2  # int8, fp32 scale + int8 zero a row, biases
    nf4 = stored_weights(module, FORMATS["nf4"])
    blocks = 2 * (64 * 256 // 64)
    assert nf4.bytes == 64 * 256 + blocks * 4 + (256 + 64) * 2  # 4 bits + one fp32 absmax per 64 + biases


def test_wave_quantization_and_the_roofline_per_op():
    assert wave_fraction(128, 128) == 1.0 and wave_fraction(129, 128) == pytest.approx(129 / 256)
    assert wave_fraction(40, 128) == pytest.approx(40 / 128)
    gpu = load_catalog()["RTX 4090"]
    x = torch.zeros(4096, 4096, dtype=torch.float16, device="meta")
    big = trace_call(meta(nn.Linear(4096, 4096, bias=False)), (x,))
    unit = ArchEfficiency(1.0, "test")
    seconds = gpu_seconds(big, gpu, unit)
    assert seconds == pytest.approx(2 * 4096**3 / gpu.tensor_flops, rel=1e-6)  # 1024 tiles: 8 full waves
    assert gpu_seconds(big, gpu, ArchEfficiency(0.5, "test")) == pytest.approx(2 * seconds)


@pytest.fixture(scope="module")
def validation():
    from sdshape.feasibility.validation import run

    return run(write=False)


@pytest.mark.slow
def test_static_peaks_reproduce_the_h100_allocator_peaks_within_10_percent(validation):
    """The GPU run's own counters (torch's, untouched by the NVML baseline defect) are the test."""
    rows = [r for r in validation["rows"] if r["kind"] == "allocated_peak_gib"]
    assert len(rows) == 6  # SD 1.5 at 512 px and SDXL at 1024 px, three stages each
    for row in rows:
        assert row["error"] < 0.10, row


@pytest.mark.slow
def test_every_class_meets_its_targets_and_the_committed_model_is_this_calibration(validation):
    """Per class (resident, offload, format, batch): median time error 25% or less, no figure over 2x,
    known-counter memory within 15%, every published OOM predicted. CI fails when one breaks."""
    assert validation["missed"] == []
    classes = validation["classes"]
    assert all(classes[c]["time_n"] >= 1 for c in ("resident", "offload", "format", "batch"))
    committed = json.loads((ROOT / "sdshape" / "data" / "time_model.json").read_text())
    fresh = validation["model"]
    assert committed["architectures"].keys() == fresh["architectures"].keys()
    for arch, entry in fresh["architectures"].items():
        assert committed["architectures"][arch]["factor"] == pytest.approx(entry["factor"], rel=1e-6), arch
    for host, entry in fresh["hosts"].items():
        assert committed["hosts"][host]["s_per_launch"] == pytest.approx(entry["s_per_launch"], rel=1e-6), host
    for policy, entry in fresh["links"].items():
        assert committed["links"][policy]["efficiency"] == pytest.approx(entry["efficiency"], rel=1e-6), policy
    assert committed["dequant"]["efficiency"] == pytest.approx(fresh["dequant"]["efficiency"], rel=1e-6)
    for name, band in fresh["bands"].items():
        assert committed["bands"][name] == pytest.approx(band, rel=1e-6), name


@pytest.mark.slow
def test_no_figure_both_calibrates_and_validates(validation):
    from sdshape.feasibility.figures import public_figures

    calibrating = {f.id for f in public_figures() if f.role == "calibration"}
    assert calibrating and not calibrating & {r["id"] for r in validation["rows"]}
    model = validation["model"]
    sources = " ".join(
        [e["source"] for e in model["architectures"].values()]
        + [e["source"] for e in model["hosts"].values()]
        + [e["source"] for e in model["links"].values()]
        + [model["dequant"]["source"]]
    )
    assert all(figure in sources for figure in calibrating), calibrating


@pytest.fixture(scope="module")
def trace_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("static-cache"))


def fit_json(capsys, monkeypatch, cache: str, *argv: str) -> dict:
    from sdshape.cli import main

    monkeypatch.setenv("SDSHAPE_CACHE_DIR", cache)
    assert main(["fit", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_fit_answers_the_consumer_question_with_no_gpu(capsys, monkeypatch, trace_cache):
    answer = fit_json(capsys, monkeypatch, trace_cache, "sdxl", "--gpu", "RTX 4060 8GB", "--gpu", "RTX 4090")
    small, big = answer["cards"]
    for card in answer["cards"]:
        assert {"gpu", "fits", "policy", "peak_bytes", "peak_bytes_by_policy", "seconds_per_image", "seconds_band",
                "bound", "source"} <= set(card)  # fmt: skip
        assert card["source"] == "model" and card["bound"] in ("gpu", "host", "link")
        low, high = card["seconds_band"]
        assert low < card["seconds_per_image"] < high
        peaks = card["peak_bytes_by_policy"]
        assert peaks["sequential_offload"] <= peaks["group_offload_leaf"] <= peaks["group_offload_block"]
        assert peaks["group_offload_block"] <= peaks["model_offload"] <= peaks["text_encoders_dropped"]
        assert peaks["text_encoders_dropped"] <= peaks["all_resident"] == card["peak_bytes"]
        hosts = card["host_bytes_by_policy"]
        assert hosts["all_resident"] == 0 < hosts["text_encoders_dropped"] < hosts["model_offload"]
    assert big["fits"] and big["policy"] == "all_resident"
    assert small["fits"] and small["policy"] not in ("all_resident", "text_encoders_dropped")
    assert small["seconds_per_image"] > big["seconds_per_image"] and small["link_s_per_image"] > 0
    decode = answer["stages"]["vae_decode"]
    assert decode["dtype"] == "float32" and "force_upcast" in decode["notes"][0]
    assert answer["stages"]["denoise_loop"]["weight_bytes"] == 5_134_927_368  # the H100 run's weights_bytes


def test_fit_marks_a_precision_a_card_cannot_run_and_honours_one_policy(capsys, monkeypatch, trace_cache):
    answer = fit_json(capsys, monkeypatch, trace_cache, "sd15", "--gpu", "T4", "--gpu", "RTX 3060 12GB",
                      "--precision", "bf16")  # fmt: skip
    t4, ampere = answer["cards"]
    assert not t4["supported"] and not t4["fits"] and t4["seconds_per_image"] is None
    assert "bf16" in t4["unsupported_reason"]
    assert ampere["supported"] and ampere["policy"] == "all_resident"
    one = fit_json(capsys, monkeypatch, trace_cache, "sd15", "--gpu", "RTX 3060 12GB", "--policy", "sequential_offload")
    card = one["cards"][0]
    unet = one["stages"]["denoise_loop"]["weight_bytes"]
    assert card["policy"] == "sequential_offload" and card["link_bytes_per_image"] > 50 * unet  # every step
    rate = 16 * 1.969e9 * card["transfers"]["link_efficiency"]  # PCIe 4.0 x16 at the policy's calibrated share
    assert card["link_s_per_image"] == pytest.approx(card["link_bytes_per_image"] / rate)
    assert card["transfers"]["d2h_bytes_per_batch"] == 0 and not card["transfers"]["pinned"]


@pytest.mark.slow
def test_fit_keeps_the_vae_in_fp16_when_asked(capsys, monkeypatch, trace_cache):
    answer = fit_json(capsys, monkeypatch, trace_cache, "sdxl", "--gpu", "RTX 4090", "--vae-fp16")
    assert answer["stages"]["vae_decode"]["dtype"] == "float16"
    upcast = fit_json(capsys, monkeypatch, trace_cache, "sdxl", "--gpu", "RTX 4090")
    assert upcast["cards"][0]["peak_bytes"] > answer["cards"][0]["peak_bytes"] * 1.15


@pytest.mark.parametrize("shape", ["tiny", "tiny-pixart", "tiny-sd3", "tiny-flux", "tiny-flux-schnell"])
def test_fit_traces_every_family(shape, capsys, monkeypatch, trace_cache):
    answer = fit_json(capsys, monkeypatch, trace_cache, shape, "--gpu", "RTX 4060 8GB", "--precision", "nf4")
    assert answer["cards"][0]["fits"] and answer["stages"]["denoise_loop"]["launches_per_call"] > 10
    assert all(s["activation_peak_bytes"] > 0 for s in answer["stages"].values())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "sd99"], "unknown shape 'sd99'"),
        (["fit", "sd15", "--gpu", "RTX 9999"], "unknown GPU 'RTX 9999'"),
        (["fit", "sd15", "--precision", "fp4"], "unknown precision 'fp4'; valid choices: fp32, fp16, bf16, fp8, int8"),
        (["fit", "sd15", "--host", "laptop"], "unknown host 'laptop'; valid choices: server, desktop"),
        (["fit", "sd3-medium", "--resolution", "4096"], "the largest image it supports is 3072 px"),
        (["fit", "sd15", "--policy", "swap"], "unknown policy 'swap'"),
        (["fit", "sd15", "--backend", "tensorrt"], "unknown backend 'tensorrt'; valid choices: eager, compile"),
        (["fit", "sd15", "--steps", "0"], "--steps must be at least 1"),
        (["fit", "sd15", "--resolution", "500"], "--resolution must be a multiple of 8"),
    ],
)
def test_fit_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    from sdshape.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_batches_are_priced_per_image_with_the_host_amortized(capsys, monkeypatch, trace_cache):
    one = fit_json(capsys, monkeypatch, trace_cache, "sd15", "--gpu", "A100 40GB", "--host", "server")
    four = fit_json(capsys, monkeypatch, trace_cache, "sd15", "--gpu", "A100 40GB", "--host", "server",
                    "--batch", "4")  # fmt: skip
    a, b = one["cards"][0], four["cards"][0]
    assert b["seconds_per_batch"] == pytest.approx(4 * b["seconds_per_image"])
    assert a["seconds_per_batch"] == pytest.approx(a["seconds_per_image"])
    # the same launches carry four images: per image, a batch of 4 costs less than a batch of 1
    assert b["seconds_per_image"] < a["seconds_per_image"] < b["seconds_per_batch"]
    assert b["host_s_per_step"] == pytest.approx(a["host_s_per_step"])  # launches do not grow with the batch


def test_a_desktop_launches_faster_than_a_server(capsys, monkeypatch, trace_cache):
    desktop = fit_json(capsys, monkeypatch, trace_cache, "sd15", "--gpu", "RTX 4090")["cards"][0]
    server = fit_json(capsys, monkeypatch, trace_cache, "sd15", "--gpu", "RTX 4090", "--host", "server")["cards"][0]
    assert desktop["host"] == "desktop" and desktop["host_s_per_step"] < server["host_s_per_step"]


def test_formats_cost_time_as_their_kernels_run_and_gguf_stores_exact_blocks(capsys, monkeypatch, trace_cache):
    from sdshape.feasibility.dequant import call_cost
    from sdshape.feasibility.formats import GGUF_BLOCKS, weight_format

    gguf = pytest.importorskip("gguf")
    for block, (elements, nbytes) in GGUF_BLOCKS.items():
        assert gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[block.upper()]] == (elements, nbytes)
    q8, q4k = call_cost(weight_format("gguf-q8_0")), call_cost(weight_format("gguf-q4_k"))
    assert q4k.launches > q8.launches and q4k.bytes_per_param > q8.bytes_per_param > 1 + 2  # read, write bf16
    assert "dequantize_gguf_tensor" in q8.source  # traced from diffusers' own code, not assumed
    times, stored = {}, {}
    for precision in ("bf16", "nf4", "gguf-q8_0"):
        answer = fit_json(capsys, monkeypatch, trace_cache, "tiny-flux", "--gpu", "H100 SXM", "--precision", precision)
        times[precision] = answer["cards"][0]["gpu_s_per_step"]
        stored[precision] = answer["stages"]["denoise_loop"]["weight_bytes"]
    assert times["bf16"] < times["nf4"] and times["bf16"] < times["gguf-q8_0"]
    assert stored["gguf-q8_0"] < stored["bf16"]  # tiny FLUX's 32-wide rows are whole Q8_0 blocks


def test_fit_names_the_fastest_format_and_policy_that_fit(capsys, monkeypatch, trace_cache):
    answer = fit_json(capsys, monkeypatch, trace_cache, "tiny-flux", "--gpu", "RTX 4060 8GB", "--gpu", "H100 SXM")
    for card in answer["cards"]:
        best = card["best"]
        assert best["precision"] and best["policy"] and best["peak_bytes"] + card["context_bytes"] < card["vram_bytes"]
        low, high = best["seconds_band"]
        assert low <= best["seconds_per_image"] <= high


def test_every_zoo_shape_stores_in_every_format_without_a_traceback():
    """The fp8 crash (transformers 5's set of _keep_in_fp32_modules) came from the weights walk: every
    published system's components, in every format, on the meta device."""
    from sdshape.models.build import meta_module
    from sdshape.models.families import family_of
    from sdshape.models.zoo import all_shapes, shape_components

    seen = set()
    for shape in all_shapes().values():
        specs = shape_components(shape)
        family = family_of(specs["denoiser"])
        for kind, spec in specs.items():
            if spec.name in seen:
                continue
            seen.add(spec.name)
            module = meta_module(spec, family).to(torch.bfloat16)
            plain = stored_weights(module, FORMATS["bf16"]).bytes
            for name, fmt in FORMATS.items():
                if fmt.compute_dtype != torch.bfloat16:
                    continue
                stored = stored_weights(module, fmt, quantize=kind in fmt.kinds)
                assert 0 < stored.bytes <= plain, (spec.name, name)


@pytest.mark.parametrize("shape", ["tiny", "tiny-xl", "tiny-pixart", "tiny-sd3", "tiny-flux"])
def test_fit_answers_every_format_and_policy_on_every_family(shape, capsys, monkeypatch, trace_cache):
    from sdshape.core.vocabulary import POLICIES
    from sdshape.feasibility.formats import FORMATS

    for precision in FORMATS:
        answer = fit_json(capsys, monkeypatch, trace_cache, shape, "--gpu", "RTX 4090", "--precision", precision)
        card = answer["cards"][0]
        assert set(card["peak_bytes_by_policy"]) == set(POLICIES) and card["fits"], precision
        assert card["seconds_per_image"] > 0
    for policy in POLICIES:
        card = fit_json(capsys, monkeypatch, trace_cache, shape, "--gpu", "RTX 4060 8GB", "--policy", policy)["cards"][
            0
        ]
        assert card["policy"] == policy and card["seconds_per_image"] > 0


# Every command that imports torch and the model libraries, run in one process (the logging state is the
# process's): what reaches stderr must be sdshape's own (its progress lines and notes), nothing else.
NOISE_SCRIPT = """
import contextlib, io, sys
from sdshape.cli import main
commands = [
    ["zoo", "--json"],
    ["inspect", "tiny", "--json"],
    ["fit", "tiny", "--gpu", "RTX 4090", "--precision", "nf4", "--json"],
    ["shapes", "--budget", "1e6", "--family", "tiny", "--json"],
    ["run", "--shape", "tiny", "--device", "cpu", "--rounds", "1", "--warmup", "0", "--steps", "1",
     "--profile", "--json", sys.argv[1]],
]
for argv in commands:
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0, argv
"""


@pytest.mark.slow
def test_sdshape_prints_nothing_the_user_did_not_ask_for(tmp_path):
    """bitsandbytes, torchao, torch and diffusers log warnings on import on machines without their kernels
    ("Failed to load CPU gemm_4bit_forward from kernels-community"); the command line keeps them out of its
    output on every command that imports them."""
    import os
    import re
    import subprocess
    import sys

    env = {**os.environ, "SDSHAPE_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", NOISE_SCRIPT, str(tmp_path / "run.json")],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    own = re.compile(r"^(sdshape: |\[ *[0-9.]+s\] |\s*$)")
    foreign = [line for line in done.stderr.splitlines() if not own.match(line)]
    assert not foreign, foreign


def test_a_tiled_decode_costs_every_tile_and_the_trace_cache_follows_the_code():
    from sdshape.feasibility.static import tiles_per_side
    from sdshape.feasibility.trace_cache import TRACE_SOURCES

    # AutoencoderKL.tiled_decode at 1024 px with 512 px tiles: latents 128, tiles of 64 every 48 -> 3 a side
    assert tiles_per_side(1024, 512) == 3 and tiles_per_side(1024, 1024) == 1 and tiles_per_side(2048, 1024) == 3
    assert all(path.exists() for path in TRACE_SOURCES)  # a renamed module must not leave stale traces in use
