"""`pytest bench/` end to end on the tiny shape: valid pytest-benchmark JSON with sdshape's extra_info."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTRA_INFO_KEYS = {
    "stage",
    "shape",
    "backend",
    "precision",
    "batch",
    "resolution",
    "steps",
    "params",
    "param_share",
    "flops",
    "memory",
    "energy_j",
    "status",
}


def _run_bench(tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "bench"), "-q", "-p", "no:cacheprovider", *options],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("bench")
    out = tmp_path / "out.json"
    # fmt: off
    result = _run_bench(
        tmp_path, "--shape", "tiny", "--device", "cpu", "--steps", "2", "--rounds", "3", "--warmup", "1",
        "--backend", "eager,compile,onnxruntime", "--benchmark-json", str(out),
    )
    # fmt: on
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(out.read_text())


@pytest.mark.slow
def test_one_benchmark_per_stage_and_backend_with_raw_rounds(bench_json):
    every = bench_json["benchmarks"]
    assert len(every) == 12
    # One backend resident at a time, as in `sdshape run`: all stages of one backend, then the next.
    order = [b["extra_info"]["backend"] for b in every]
    assert order == ["eager"] * 4 + ["compile"] * 4 + ["onnxruntime"] * 4
    assert all(b["extra_info"]["baseline"]["settled"] for b in every)
    for bench in every:
        assert bench["extra_info"]["status"] == "ok"
        assert bench["extra_info"]["parity"]["ok"]
    benchmarks = [b for b in every if b["extra_info"]["backend"] == "eager"]
    assert [b["extra_info"]["stage"] for b in benchmarks] == ["text_encoder", "denoise_loop", "vae_decode", "pipeline"]
    for bench in benchmarks:
        assert set(bench["extra_info"]) >= EXTRA_INFO_KEYS
        assert bench["extra_info"]["status"] == "ok"
        assert len(bench["stats"]["data"]) == 3  # warm-up excluded
        assert len(bench["extra_info"]["device_rounds_s"]) == 3
        assert bench["extra_info"]["shape"] == "tiny" and bench["extra_info"]["steps"] == 2
        assert isinstance(bench["extra_info"]["memory"], dict)
    assert "residual" in benchmarks[-1]["extra_info"]
    compiled = [b for b in every if b["extra_info"]["backend"] == "compile"]
    assert all(b["extra_info"]["artifact"]["cache"] == "built" for b in compiled)


@pytest.mark.slow
def test_machine_info_holds_the_environment_fingerprint(bench_json):
    info = bench_json["machine_info"]
    for key in (
        "gpu_name",
        "gpu_memory_bytes",
        "driver_version",
        "cuda_runtime_version",
        "cuda_driver_version",
        "cudnn_version",
        "torch_version",
        "diffusers_version",
        "transformers_version",
    ):
        assert key in info
    assert info["gpu_name"] is None and info["torch_version"]
    assert info["nvml"]["available"] is False


def test_bad_bench_option_is_a_usage_error(tmp_path):
    result = _run_bench(tmp_path, "--shape", "sd9")
    assert result.returncode == 4  # pytest's exit status for usage errors
    assert "unknown shape 'sd9'" in result.stderr


@pytest.mark.slow
def test_a_failing_stage_stays_in_the_json(tmp_path):
    """Inconsistent weights (UNet expects 64-wide text, the encoder gives 32): the UNet loop and the
    pipeline fail, their rows stay in the JSON with status and message, the other stages are ok."""
    import dataclasses

    import torch

    from sdshape.models.build import build_random
    from sdshape.models.zoo import get_component

    folder = tmp_path / "mismatched"
    cpu = torch.device("cpu")
    build_random(get_component("tiny-clip"), cpu, torch.float32).encoders[0].save_pretrained(folder / "text_encoder")
    unet_spec = get_component("tiny-unet")
    wide = dataclasses.replace(unet_spec, config={**unet_spec.config, "cross_attention_dim": 64})
    build_random(wide, cpu, torch.float32).unet.save_pretrained(folder / "unet")
    build_random(get_component("tiny-vae"), cpu, torch.float32).vae.save_pretrained(folder / "vae")

    out = tmp_path / "out.json"
    result = _run_bench(
        tmp_path,
        "--weights",
        str(folder),
        "--device",
        "cpu",
        "--steps",
        "1",
        "--rounds",
        "1",
        "--warmup",
        "0",
        "--benchmark-json",
        str(out),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "kept as a result row" in result.stdout
    doc = json.loads(out.read_text())
    rows = {b["extra_info"]["stage"]: b for b in doc["benchmarks"]}
    assert set(rows) == {"text_encoder", "denoise_loop", "vae_decode", "pipeline"}
    assert rows["text_encoder"]["extra_info"]["status"] == rows["vae_decode"]["extra_info"]["status"] == "ok"
    for stage in ("denoise_loop", "pipeline"):
        assert rows[stage]["extra_info"]["status"] == "error"
        assert rows[stage]["stats"] is None
        assert "RuntimeError" in rows[stage]["extra_info"]["message"]


@pytest.mark.slow
def test_benchmark_compare_warns_about_a_different_environment(tmp_path):
    storage = tmp_path / "store"
    common = (
        "--shape",
        "tiny",
        "--device",
        "cpu",
        "--steps",
        "1",
        "--rounds",
        "2",
        "--warmup",
        "0",
        f"--benchmark-storage=file://{storage}",
    )
    first = _run_bench(tmp_path, *common, "--benchmark-save=base")
    assert first.returncode == 0, first.stdout + first.stderr
    saved = next(storage.rglob("*base.json"))
    document = json.loads(saved.read_text())
    document["machine_info"]["driver_version"] = "999.99"
    saved.write_text(json.dumps(document))
    second = _run_bench(tmp_path, *common, "--benchmark-compare=0001")
    assert second.returncode == 0, second.stdout + second.stderr
    output = second.stdout + second.stderr
    assert "sdshape: this run is compared with one from a different environment" in output
    assert "driver_version: 999.99 -> None" in output
