"""Hostile and careless input, class by class: nothing lost, nothing half-written, nothing absurd run.

Each class of failure found by trying sdshape as a careless user would (README, "Reliability") has
its test here: writes, absurd sizes, shapes files, the artifact cache, bad result files, big inputs.
"""

from __future__ import annotations

import errno
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from sdshape.cli import main
from sdshape.result import output

ROOT = Path(__file__).resolve().parents[2]
TINY = ["run", "--shape", "tiny", "--device", "cpu", "--steps", "1", "--rounds", "1", "--warmup", "0"]
RESULTS = ROOT / "results" / "examples" / "threads" / "1-two-threads.json"


def one_line_exit_2(argv: list[str], capsys, *expected: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err


# -- 1. writes never lose or truncate results ------------------------------------------------


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--json", ""], "--json: empty path"),
        (["--json", "/nonexistent-dir/out.json"], "directory /nonexistent-dir does not exist"),
        (["--json", "/tmp"], "is a directory"),
        (["--save", "--results-dir", str(RESULTS)], "is a file, not a folder"),
    ],
    ids=["empty", "missing-dir", "directory", "file-valued-results-dir"],
)
def test_output_locations_are_checked_before_any_work(argv, expected, capsys, no_work):
    one_line_exit_2([*TINY, *argv], capsys, expected)  # refused up front, not after building and measuring


@pytest.mark.parametrize("command", [["report", str(RESULTS)], ["history", str(RESULTS.parent)]])
def test_report_and_history_check_their_out_folder_first(command, tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    one_line_exit_2([*command, "--out", str(a_file)], capsys, "is a file, not a folder")
    one_line_exit_2(["shapes", "--budget", "5e6", "--family", "tiny", "--out", str(a_file)], capsys, "is a file")


def test_a_full_disk_at_the_end_sends_the_results_to_a_printed_fallback(tmp_path, monkeypatch, capsys):
    full = tmp_path / "full"
    full.mkdir()
    real = output._temporary_beside

    def disk_full(path, data):
        if Path(path).parent == full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(output, "_temporary_beside", disk_full)
    assert main([*TINY, "--json", str(full / "out.json")]) == 1
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if "could not write" in line)
    assert "No space left on device" in line
    fallback = Path(line.rsplit("the results are in ", 1)[1])
    document = json.loads(fallback.read_text())  # every stage is there, complete
    assert len(document["benchmarks"]) == 4
    assert list(full.iterdir()) == []  # no truncated file, no temporary left behind
    fallback.unlink()


def test_writes_are_atomic_and_save_never_replaces(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    target.write_text("the old results")

    def fail(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(output, "_write_bytes", fail)
    with pytest.raises(OSError):
        output.write_atomic(target, "new results")
    assert target.read_text() == "the old results" and sorted(tmp_path.iterdir()) == [target]
    monkeypatch.undo()
    output.write_new(tmp_path / "fresh.json", "a")
    with pytest.raises(FileExistsError):
        output.write_new(tmp_path / "fresh.json", "b")
    assert (tmp_path / "fresh.json").read_text() == "a"


def test_results_are_standard_json():
    text = output.standard_json({"benchmarks": [{"power_w_mean": float("nan"), "energy_j": math.inf}]})
    document = json.loads(text)  # a strict parser would refuse NaN and Infinity
    assert "NaN" not in text and "Infinity" not in text
    assert document["benchmarks"][0] == {"power_w_mean": None, "energy_j": None}
    assert document["non_finite_nulled"] == ["benchmarks[0].power_w_mean: nan", "benchmarks[0].energy_j: inf"]


def test_bench_checks_its_json_path_before_running(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "bench"), "-q", "-p", "no:cacheprovider", "--shape", "tiny",
         "--device", "cpu", "--benchmark-json", "/missing/dir/x.json"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 4  # pytest's usage error, before any benchmark
    assert "--benchmark-json /missing/dir/x.json" in done.stderr and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr and "passed" not in done.stdout  # no benchmark ran


# -- 2. absurd sizes are refused before they allocate ----------------------------------------


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--steps", "1000000000"], "--steps must be at most 1000"),
        (["--resolution", "1000000000"], "--resolution must be a multiple of 8, at most 16384"),
        (["--batch", "100000000"], "--batch must be at most 4096"),
        (["--seq-len", "1000000000", "--text-encoder", "tiny-t5"], "over 2^63 bytes, more than any device holds"),
        (["--seed", "12345678901234567890123"], "--seed must be at most"),
        (["--seed", "-1"], "--seed must be at least 0"),
        (["--rounds", "1000000000"], "--rounds must be at most 10000"),
        (["--warmup", "5000"], "--warmup must be at most 1000"),
    ],
    ids=["steps", "resolution", "batch", "seq-len", "seed-huge", "seed-negative", "rounds", "warmup"],
)
def test_absurd_sizes_are_refused(argv, expected, capsys, no_work):
    one_line_exit_2([*TINY, *argv], capsys, expected)


def test_a_run_in_which_no_stage_completed_exits_1(monkeypatch, capsys):
    from sdshape.models import build

    def broken(*args, **kwargs):
        raise RuntimeError("the model could not be built")

    monkeypatch.setattr(build, "build_shape", broken)
    assert main(TINY) == 1
    assert "4 stage(s) did not complete" in capsys.readouterr().out


# -- 3. shapes files and --weights configs get the same checks as flags --------------------------


@pytest.mark.parametrize(
    "value,expected",
    [
        ("-3", "at least 1, got -3"),
        ("true", "a whole number, got True"),
        ("2.5", "a whole number, got 2.5"),
        ('"long"', "a whole number, got 'long'"),
    ],
    ids=["negative", "bool", "fraction", "string"],
)
def test_shapes_file_fields_are_checked_like_flags(value, expected, tmp_path, capsys):
    shapes = tmp_path / "shapes.toml"
    shapes.write_text(
        f'[shape.mine]\ntext_encoder = "tiny-t5"\nunet = "tiny-unet"\nvae = "tiny-vae"\nsequence_length = {value}\n'
    )
    one_line_exit_2([*TINY[:1], "--shapes-file", str(shapes), "--device", "cpu"], capsys, "sequence_length", expected)
    shapes.write_text('[shape.mine]\ntext_encoder = 5\nunet = "tiny-unet"\nvae = "tiny-vae"\n')
    one_line_exit_2(["run", "--shapes-file", str(shapes), "--device", "cpu"], capsys, "text_encoder must be")


def test_a_weights_config_that_is_not_an_object_is_one_line(tmp_path, capsys):
    for part in ("text_encoder", "unet", "vae"):
        (tmp_path / part).mkdir()
        (tmp_path / part / "config.json").write_text("[1, 2, 3]")
    one_line_exit_2(["run", "--weights", str(tmp_path), "--device", "cpu"], capsys, "expected a JSON object")


# -- 4. the artifact cache checks what it reuses -------------------------------------------------


def _unet_entry(cache: Path) -> Path:
    """The optimized ONNX entry of the tiny UNet (what the default onnxruntime runs): the largest weights file."""
    entries = [m.parent for m in (cache / "onnx-ort-opt").glob("*/manifest.json")]
    return max(entries, key=lambda e: sum(f.stat().st_size for f in e.iterdir()))


def _garble(entry: Path, value: bytes) -> None:
    data = entry / "model.onnx.data"
    raw = bytearray(data.read_bytes())
    middle = len(raw) // 2 - (len(raw) // 2) % 4
    raw[middle : middle + 4096] = value * (4096 // len(value))  # same size: only a whole-file hash sees it
    data.write_bytes(bytes(raw))


@pytest.fixture
def built_cache(tmp_path, capsys):
    cache = tmp_path / "cache"
    assert main([*TINY, "--backend", "onnxruntime", "--cache-dir", str(cache)]) == 0
    capsys.readouterr()
    return cache


def _ort_rows(out: Path) -> dict:
    rows = json.loads(out.read_text())["benchmarks"]
    return {b["extra_info"]["stage"]: b["extra_info"] for b in rows if b["extra_info"]["backend"] == "onnxruntime"}


@pytest.mark.slow
def test_garbage_in_the_middle_of_a_weights_file_is_caught(built_cache, tmp_path, capsys):
    _garble(_unet_entry(built_cache), b"\xff\xff\x7f\x7f")
    out = tmp_path / "again.json"
    assert main([*TINY, "--backend", "onnxruntime", "--cache-dir", str(built_cache), "--json", str(out)]) == 0
    assert "previous entry was incomplete or corrupt: rebuilt" in capsys.readouterr().err  # said on the console
    rows = _ort_rows(out)
    assert rows["denoise_loop"]["artifact"]["cache"] == "built" and rows["denoise_loop"]["status"] == "ok"
    assert rows["text_encoder"]["artifact"]["cache"] == "reused"


@pytest.mark.slow
def test_an_entry_whose_output_is_nan_is_dropped_and_rebuilt_once(built_cache, tmp_path, capsys):
    """Garbage that passes the checksum (the manifest rewritten to match): parity finds NaN, the entry
    is dropped, the UNet exported again, and the loop measured again, with the row saying so."""
    from sdshape.backends.cache import MANIFEST, fingerprint

    entry = _unet_entry(built_cache)
    _garble(entry, b"\x00\x00\xc0\x7f")  # float32 NaN
    manifest = json.loads((entry / MANIFEST).read_text())
    manifest["files"] = {name: fingerprint(entry / name) for name in manifest["files"]}
    (entry / MANIFEST).write_text(json.dumps(manifest))
    out = tmp_path / "again.json"
    assert main([*TINY, "--backend", "onnxruntime", "--cache-dir", str(built_cache), "--json", str(out)]) == 0
    assert "held NaN/Inf against the reference: dropped and rebuilt" in capsys.readouterr().err
    loop = _ort_rows(out)["denoise_loop"]
    assert loop["status"] == "ok" and loop["parity"]["ok"] and loop["artifact"]["cache"] == "built"
    assert any("dropped and rebuilt" in note for note in loop["artifact"]["notes"])


@pytest.mark.slow
def test_a_read_only_cache_with_a_broken_entry_still_serves_the_valid_ones(built_cache, tmp_path, monkeypatch, capsys):
    import os

    from sdshape.config import identity

    _garble(_unet_entry(built_cache), b"\x01\x02\x03\x04")
    real_access = os.access
    read_only = lambda p, mode: False if Path(p) == built_cache else real_access(p, mode)  # noqa: E731
    monkeypatch.setattr(identity.os, "access", read_only)
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path / "fallback-root"))
    (tmp_path / "fallback-root").mkdir()
    out = tmp_path / "ro.json"
    assert main([*TINY, "--backend", "onnxruntime", "--cache-dir", str(built_cache), "--json", str(out)]) == 0
    assert "is read-only: its valid entries are reused, new ones are built in" in capsys.readouterr().err
    rows = _ort_rows(out)
    assert all(row["status"] == "ok" for row in rows.values())
    assert rows["text_encoder"]["artifact"]["cache"] == "reused" and rows["vae_decode"]["artifact"]["cache"] == "reused"
    assert rows["denoise_loop"]["artifact"]["cache"] == "built"
    assert str(tmp_path / "fallback-root") in rows["denoise_loop"]["artifact"]["path"]


def test_a_file_valued_cache_dir_is_one_line(capsys):
    one_line_exit_2([*TINY, "--backend", "onnxruntime", "--cache-dir", str(RESULTS)], capsys, "not a folder")


# -- 5. result files with bad numbers are bad files ----------------------------------------------


@pytest.mark.parametrize(
    "round_value,expected",
    [
        ("NaN", "stats.data[0] = nan"),
        (-0.05, "stats.data[0] = -0.05"),
        ("fast", "stats.data[0] = 'fast'"),
        (None, "stats.data[0] = None"),
    ],
    ids=["nan", "negative", "string", "null"],
)
def test_compare_refuses_rounds_that_are_not_times(round_value, expected, tmp_path, capsys):
    document = json.loads(RESULTS.read_text())
    document["benchmarks"][1]["stats"]["data"][0] = float("nan") if round_value == "NaN" else round_value
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))  # json.dumps writes NaN as a bare NaN, as a careless tool would
    err = one_line_exit_2(["compare", str(RESULTS), str(bad)], capsys, str(bad), expected)
    assert "unet_loop" in err  # the benchmark's name as the (pre-families) file spells it
    assert main(["history", str(tmp_path), "--out", str(tmp_path / "h")]) == 2  # the only file: skipped, so none
    assert "1 JSON files skipped" in capsys.readouterr().err


def test_a_thresholds_file_of_the_wrong_shape_is_one_line(tmp_path, capsys):
    thresholds = tmp_path / "thresholds.toml"
    for text, expected in (
        ("override = 5", "override must be a list"),
        ("[[override]]\ntime = true", "time must be a number"),
    ):
        thresholds.write_text(text)
        one_line_exit_2(["compare", str(RESULTS), str(RESULTS), "--thresholds", str(thresholds)], capsys, expected)


# -- 6. big inputs stay fast ---------------------------------------------------------------------


def test_the_smallest_p_value_of_long_runs_is_computed_in_logarithms(monkeypatch):
    from sdshape.regression.compare import smallest_p

    assert smallest_p(3, 3) == pytest.approx(0.1) and smallest_p(4, 4) == pytest.approx(2 / 70)
    assert smallest_p(620_000, 620_000) == 0.0  # 53 s and 601 MB as an exact binomial
    with monkeypatch.context() as patched:  # in logarithms: the binomial with 370,000 digits is never formed
        patched.setattr(math, "comb", lambda *a: pytest.fail("smallest_p formed the exact binomial"))
        assert smallest_p(620_000, 620_000) == 0.0


def test_the_no_work_guard_catches_a_command_that_works(tmp_path, no_work, capsys):
    """The guard the up-front refusals are checked with fails a run that builds, and a compare that reads."""
    from tests.conftest import WorkStarted

    with pytest.raises(WorkStarted):
        main([*TINY, "--rounds", "1", "--warmup", "0"])
    with pytest.raises(WorkStarted):
        main(["compare", str(RESULTS), str(RESULTS)])
