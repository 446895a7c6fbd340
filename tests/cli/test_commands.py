"""The CLI: bad input is one line and exit 2; the main job writes the pytest-benchmark schema."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sdshape.cli import main

BAD_INPUT = [
    (["run", "--shape", "sd9"], "unknown shape 'sd9'", "sd15"),
    (["run", "--backend", "warp"], "unknown backend 'warp'", "eager"),
    (["run", "--backend", "eager,warp"], "unknown backend 'warp'", "eager"),
    (["run", "--precision", "fp4"], "unknown precision 'fp4'", "fp32, fp16, bf16, fp8, int8, nf4"),
    (["run", "--device", "tpu"], "unknown device 'tpu'", "cuda, cpu"),
    (["run", "--resolution", "100"], "multiple of 8", "100"),
    (["run", "--resolution", "-64"], "multiple of 8", "-64"),
    (["run", "--steps", "0"], "--steps must be at least 1", "0"),
    (["run", "--batch", "0"], "--batch must be at least 1", "0"),
    (["run", "--rounds", "0"], "--rounds must be at least 1", "0"),
    (["run", "--steps", "many"], "--steps must be a whole number", "many"),
    (["run", "--sample-interval", "-1"], "--sample-interval must be at least 0", "-1"),
    (["run", "--sample-interval", "nan"], "--sample-interval must be between 0", "nan"),
    (["run", "--device", "cpu", "--precision", "fp16"], "fp16 on the CPU", "bf16 or fp32"),
    (["run", "--json", "/nonexistent-dir/out.json"], "cannot write there", "/nonexistent-dir"),
    (["run", "--weights", "/nonexistent-weights"], "not a diffusers pipeline folder", "/nonexistent-weights"),
    (["inspect", "sd9"], "unknown shape 'sd9'", "sdxl"),
    (["inspect", "sd15", "--resolution", "513"], "multiple of 8", "513"),
    (["inspect", "sd15", "--steps", "0"], "--steps must be at least 1", "0"),
    (["zoo", "--colour"], "unrecognized arguments", "--colour"),
    (["frobnicate"], "invalid choice", "zoo"),
]


@pytest.mark.parametrize("argv,message,named", BAD_INPUT, ids=[" ".join(a) for a, _, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(argv, message, named, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert message in lines[0] and named in lines[0]
    assert "Traceback" not in captured.err


def test_device_cuda_without_a_gpu_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.setattr("sdshape.config.plan.cuda_available", lambda: False)
    assert main(["run", "--device", "cuda"]) == 2
    assert "no CUDA GPU is usable" in capsys.readouterr().err


def test_console_script_exits_2_without_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "sdshape.cli", "run", "--precision", "fp64"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def test_backend_list_is_parsed_and_deduplicated():
    from sdshape.config.limits import parse_backends

    assert parse_backends("eager, eager,", ["eager"]) == ["eager"]


def test_zoo_json(capsys):
    assert main(["zoo", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {"components", "shapes"} <= set(listing)
    assert all({"name", "kind", "params"} <= set(c) for c in listing["components"])
    assert all({"name", "components", "params"} <= set(s) for s in listing["shapes"])


def test_inspect_json(capsys):
    assert main(["inspect", "sd15", "--resolution", "256", "--steps", "10", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for stage in ("text_encoder", "denoise_loop", "vae_decode"):
        assert {"params", "flops_per_call", "calls_per_image", "flops_per_image"} <= set(report["stages"][stage])
    assert report["stages"]["denoise_loop"]["calls_per_image"] == 10


def test_inspect_table_mentions_flop_convention(capsys):
    assert main(["inspect", "tiny"]) == 0
    assert "1 MAC = 2 FLOPs" in capsys.readouterr().out


def test_run_tiny_writes_the_benchmark_schema(tmp_path, capsys):
    out = tmp_path / "run.json"
    argv = ["run", "--shape", "tiny", "--device", "cpu", "--steps", "2", "--rounds", "3", "--warmup", "1"]
    assert main([*argv, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "params %" in printed and "denoise_loop" in printed and "residual" in printed
    doc = json.loads(out.read_text())
    assert {"machine_info", "commit_info", "benchmarks", "datetime", "version"} <= set(doc)
    assert doc["machine_info"]["torch_version"] and doc["machine_info"]["gpu_name"] is None
    stages = {b["extra_info"]["stage"]: b for b in doc["benchmarks"]}
    assert list(stages) == ["text_encoder", "denoise_loop", "vae_decode", "pipeline"]
    for bench in stages.values():
        info = bench["extra_info"]
        assert info["status"] == "ok"
        assert len(bench["stats"]["data"]) == 3
        assert bench["stats"]["min"] <= bench["stats"]["median"] <= bench["stats"]["max"]
        assert info["memory"]["host_rss_peak_bytes"] is not None
        assert info["memory"]["nvml_process_peak_bytes"] is None and info["energy_j"] is None
        assert info["energy_note"]
        assert info["id"] == {
            k: info[k] for k in ("stage", "shape", "backend", "precision", "batch", "resolution", "steps")
        }
    assert sum(stages[s]["extra_info"]["param_share"] for s in ("text_encoder", "denoise_loop", "vae_decode")) == (
        pytest.approx(1.0)
    )
    assert sum(stages[s]["extra_info"]["time_share"] for s in ("text_encoder", "denoise_loop", "vae_decode")) == (
        pytest.approx(1.0)
    )
    loop = stages["denoise_loop"]["extra_info"]
    assert len(loop["step_times"]["per_step_median_s"]) == 2
    assert loop["flops"] == 2 * stages["denoise_loop"]["extra_info"]["flops"] // 2
    assert "residual_s" in stages["pipeline"]["extra_info"]["residual"]
