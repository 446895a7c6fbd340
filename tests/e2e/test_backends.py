"""Backends end to end on the tiny shape: side by side, parity, cache reuse, a plug-in through an entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from sdshape.cli import main

RUN = ["run", "--shape", "tiny", "--device", "cpu", "--steps", "2", "--rounds", "2", "--warmup", "1"]


@pytest.fixture(scope="module")
def three_backends(tmp_path_factory, artifact_cache):
    out = tmp_path_factory.mktemp("three") / "run.json"
    code = main([*RUN, "--backend", "eager,compile,onnxruntime", "--json", str(out)])
    assert code == 0
    return json.loads(out.read_text())


def _rows(doc):
    return {(b["extra_info"]["backend"], b["extra_info"]["stage"]): b["extra_info"] for b in doc["benchmarks"]}


@pytest.mark.slow
def test_three_backends_side_by_side_with_parity(three_backends):
    rows = _rows(three_backends)
    assert len(rows) == 12
    for (backend, stage), info in rows.items():
        assert info["status"] == "ok", (backend, stage, info["message"])
        if backend == "eager":
            assert info["parity"]["is_reference"] and info["artifact"]["cache"] == "none"
        else:
            assert info["parity"]["ok"] and info["parity"]["rel_l2"] < 1e-4, (backend, stage)
            assert info["parity"]["nan"] == info["parity"]["inf"] == 0
            assert info["artifact"]["cache"] in ("built", "reused")
    assert rows[("compile", "denoise_loop")]["backend_options"] == {
        "compile_mode": "default",
        "channels_last": False,
        "fuse_qkv": False,
    }
    assert rows[("onnxruntime", "denoise_loop")]["backend_options"] == {
        "ort_provider": "cpu",
        "optimize": True,
        "cuda_graph": False,
    }
    assert rows[("compile", "denoise_loop")]["artifact"]["build_s"] > 0  # compile time, apart from the rounds


@pytest.mark.slow
def test_second_run_reuses_the_exports(three_backends, tmp_path, capsys):
    out = tmp_path / "again.json"
    assert main([*RUN, "--backend", "eager,onnxruntime", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "side by side" in printed and "reused" in printed
    rows = _rows(json.loads(out.read_text()))
    for stage in ("text_encoder", "denoise_loop", "vae_decode"):
        artifact = rows[("onnxruntime", stage)]["artifact"]
        assert artifact["cache"] == "reused" and artifact["build_s"] == 0.0 and artifact["cached_build_s"] > 0
    assert rows[("onnxruntime", "pipeline")]["artifact"]["cache"] == "reused"


def test_backends_listing(capsys):
    assert main(["backends", "--json"]) == 0
    listing = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert listing["eager"]["available"] and listing["compile"]["available"] and listing["onnxruntime"]["available"]
    assert not listing["tensorrt"]["available"] and "not installed" in listing["tensorrt"]["reason"]
    assert "reduce-overhead" in listing["compile"]["variants"]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--backend", "compile:turbo"], "unknown compile variant 'turbo'"),
        (["--backend", "onnxruntime:cuda"], "does not match --device cpu"),
        (["--backend", "eager:fast"], "unknown eager variant 'fast'; valid choices: cudagraph"),
        (["--backend", "tensorrt:fast"], "takes no variant"),
        (["--compile-mode", "max"], "unknown compile mode 'max'"),
    ],
)
def test_bad_backend_options_exit_2(argv, message, capsys):
    assert main([*RUN, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err


WRONG_BACKEND = '''
import torch

from sdshape.backends import BackendBase, Option


class WrongBackend(BackendBase):
    """Eager, but every output scaled: what a broken export looks like. It declares its own option."""

    name = "wrong"
    options = (Option("scale", "factor applied to every output", default=1.5, flag="--wrong-scale", kind=float),)
    variants = {"double": {"scale": 2.0}}

    def available(self):
        return True, None

    def prepare(self, module, example_inputs, precision, device, cache):
        def run(*inputs):
            with torch.inference_mode():
                out = module(*inputs)
            scale = self.values["scale"]
            return tuple(t * scale for t in out) if isinstance(out, tuple) else out * scale

        return run
'''


@pytest.mark.slow
def test_a_wrong_backend_from_an_entry_point_is_flagged_invalid(tmp_path):
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "wrongbackend.py").write_text(textwrap.dedent(WRONG_BACKEND))
    dist = plugin / "wrongbackend-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: wrongbackend\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sdshape.backends]\nwrong = wrongbackend:WrongBackend\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "wrong.json"
    result = subprocess.run(
        [sys.executable, "-m", "sdshape.cli", *RUN, "--backend", "eager,wrong:double", "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    rows = _rows(json.loads(out.read_text()))
    for stage in ("text_encoder", "denoise_loop", "vae_decode", "pipeline"):
        info = rows[("wrong:double", stage)]
        assert info["status"] == "invalid" and "parity with eager fp32 failed" in info["message"]
        assert info["backend_options"] == {"scale": 2.0}  # the plug-in's own option, chosen by its variant
        assert rows[("eager", stage)]["status"] == "ok"
    assert "invalid" in result.stdout
    assert "★" in result.stdout  # eager is ranked; the invalid backend never is
    listed = subprocess.run(
        [sys.executable, "-m", "sdshape.cli", "backends", "--json"], capture_output=True, text=True, env=env
    )
    wrong = next(row for row in json.loads(listed.stdout) if row["name"] == "wrong")
    assert wrong["entry_point"] == "wrongbackend:WrongBackend" and wrong["variants"] == ["double"]
    assert wrong["options"][0]["flag"] == "--wrong-scale"
    bad = subprocess.run(
        [sys.executable, "-m", "sdshape.cli", *RUN, "--wrong-scale", "big"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2 and "wrong option scale: expected a number, got 'big'" in bad.stderr


@pytest.mark.slow
def test_isolate_runs_each_backend_in_its_own_process(tmp_path):
    """--isolate: the eager fp32 session and the ONNX Runtime session each in a fresh process; the
    reference crosses the process boundary and parity is still checked."""

    out = tmp_path / "isolated.json"
    code = main([*RUN, "--backend", "eager,onnxruntime", "--isolate", "--json", str(out)])
    assert code == 0
    rows = _rows(json.loads(out.read_text()))
    for stage in ("text_encoder", "denoise_loop", "vae_decode", "pipeline"):
        assert rows[("eager", stage)]["parity"]["is_reference"]
        ort = rows[("onnxruntime", stage)]
        assert ort["status"] == "ok" and ort["parity"]["ok"] and ort["parity"]["rel_l2"] < 1e-4
        assert ort["baseline"]["settled"]


def test_a_session_that_dies_leaves_error_rows_saying_so(tiny_plan):
    from sdshape.run.isolated import _failed_rows

    rows = _failed_rows(tiny_plan, "compile", "isolated session failed: the process exited with code -9")
    assert [row.stage for row in rows] == ["text_encoder", "denoise_loop", "vae_decode", "pipeline"]
    assert all(row.status == "error" and "code -9" in row.message for row in rows)
    assert rows[0].to_extra_info()["backend"] == "compile"
