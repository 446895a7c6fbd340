"""Numbers and output paths, class by class: every numeric flag of every command is checked by the bounds
declared with it (finite, in range), every output path before any work, and every final write ends in one
line: a fallback file for results, the file and the reason for a report's pages and charts. CPU only, and
no model runs."""

from __future__ import annotations

import argparse
import errno
import json
import os
from pathlib import Path

import pytest

from sdshape.cli import main
from sdshape.cli.parser import build_parser
from sdshape.config.options import RunOptions
from sdshape.core.bounds import FRACTION, Bounds
from sdshape.core.errors import UsageError, WriteError
from sdshape.feasibility import catalog as cat
from sdshape.result import output

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results" / "examples" / "threads" / "1-two-threads.json"
HISTORY = RESULTS.parent
LONG = "a" * 300  # one name longer than any Linux file system allows (NAME_MAX 255)
NOT_UTF8 = os.fsdecode(b"out\xff")  # what Python makes of a non-UTF-8 argument


def one_line(argv: list[str], capsys, code: int, *expected: str) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err


def _matrix_file(tmp_path: Path) -> Path:
    path = tmp_path / "matrix.toml"
    path.write_text('shapes = ["tiny"]\nbackends = ["eager"]\n')
    return path


# Every output flag of every command (the store's path is the store's own business).
OUTPUTS = {
    "run --json": lambda p, tmp: ["run", "--shape", "tiny", "--device", "cpu", "--json", p],
    "run --results-dir": lambda p, tmp: ["run", "--shape", "tiny", "--device", "cpu", "--save", "--results-dir", p],
    "report --out": lambda p, tmp: ["report", str(RESULTS), "--out", p],
    "history --out": lambda p, tmp: ["history", str(HISTORY), "--out", p],
    "shapes --out": lambda p, tmp: ["shapes", "--budget", "5e6", "--family", "tiny", "--out", p],
    "matrix --out": lambda p, tmp: ["matrix", str(_matrix_file(tmp)), "--out", p],
    "inspect --chart": lambda p, tmp: ["inspect", "--all", "--chart", p],
}


# -- output locations: checked before any work ----------------------------------------------------


@pytest.mark.parametrize("command", sorted(OUTPUTS))
def test_a_name_longer_than_the_file_system_allows_is_refused_up_front(command, tmp_path, capsys, no_work):
    argv = OUTPUTS[command](str(tmp_path / LONG), tmp_path)
    one_line(argv, capsys, 2, "is 300 bytes", "this file system allows 255")  # before building or reading
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "matrix.toml"])


@pytest.mark.parametrize("command", sorted(OUTPUTS))
def test_a_name_that_is_not_utf8_is_refused_up_front(command, tmp_path, capsys):
    argv = OUTPUTS[command](str(tmp_path / NOT_UTF8), tmp_path)
    err = one_line(argv, capsys, 2, "not a UTF-8 name")
    assert "out\\xff" in err  # the bytes, escaped so the line prints


def test_a_file_name_that_only_its_temporary_file_makes_too_long_is_refused(tmp_path, capsys):
    """A results file is written beside itself first (.NAME.XXXXXXXX.tmp): 250 bytes are 264 then."""
    argv = OUTPUTS["run --json"](str(tmp_path / ("b" * 250)), tmp_path)
    one_line(argv, capsys, 2, "is 250 bytes (264 as the temporary file written beside it)")


def test_a_whole_path_longer_than_the_file_system_allows_is_refused(tmp_path, capsys):
    deep = str(tmp_path / ("a/" * 2100)) + "report"
    one_line(["report", str(RESULTS), "--out", deep], capsys, 2, "the path is", "this file system allows 4096")
    one_line(OUTPUTS["run --json"](deep + ".json", tmp_path), capsys, 2, "the path is")


def test_a_folder_that_cannot_be_searched_is_a_usage_error(tmp_path, monkeypatch):
    def denied(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "is_dir", denied)
    with pytest.raises(UsageError, match="cannot use this path \\(Permission denied\\)"):
        output.file_target(tmp_path / "x.json", "--json")


# -- final writes: a full disk ---------------------------------------------------------------------


def _disk_full_at(monkeypatch, name: str) -> None:
    """Writing a file called ``name`` fills the disk half-way through."""
    real = output._write_bytes

    def half_then_full(handle, data):
        if Path(os.readlink(f"/proc/self/fd/{handle.fileno()}")).name.startswith(f".{name}."):
            handle.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(handle, data)

    monkeypatch.setattr(output, "_write_bytes", half_then_full)


def _no_temporary_left(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_report_on_a_full_disk_names_the_file_and_leaves_the_old_one_whole(tmp_path, monkeypatch, capsys):
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.html").write_text("the previous report")
    _disk_full_at(monkeypatch, "report.html")
    err = one_line(["report", str(RESULTS), "--out", str(out)], capsys, 1, "No space left on device")
    assert err.startswith(f"sdshape: could not write {out / 'report.html'} (OSError")
    assert (out / "report.html").read_text() == "the previous report"
    assert (out / "report.md").read_text().startswith("# sdshape report")  # written whole before it
    _no_temporary_left(out)


def test_history_on_a_full_disk_names_the_file_and_leaves_none_half_written(tmp_path, monkeypatch, capsys):
    out = tmp_path / "history"
    _disk_full_at(monkeypatch, "history.md")
    one_line(["history", str(HISTORY), "--out", str(out)], capsys, 1, f"could not write {out / 'history.md'}")
    assert not (out / "history.md").exists()
    _no_temporary_left(out)


def test_shapes_on_a_full_disk_sends_the_document_to_a_printed_fallback(tmp_path, monkeypatch, capsys):
    out = tmp_path / "shapes"
    _disk_full_at(monkeypatch, "shapes.json")
    assert main(["shapes", "--budget", "5e6", "--family", "tiny", "--out", str(out), "--json"]) == 1
    captured = capsys.readouterr()
    line = next(line for line in captured.err.splitlines() if "could not write" in line)
    assert "No space left on device" in line and "Traceback" not in captured.err
    fallback = Path(line.rsplit("the results are in ", 1)[1])
    assert json.loads(fallback.read_text()) == json.loads(captured.out)  # all of it, nothing lost
    fallback.unlink()
    assert not (out / "shapes.json").exists()
    _no_temporary_left(out)


def test_a_chart_on_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys):
    from sdshape.feasibility.quality_field import committed_rows
    from sdshape.models import inspection

    monkeypatch.setattr(inspection, "field_rows", lambda progress=None: committed_rows())  # not the 2-minute count
    _disk_full_at(monkeypatch, "field.png")
    one_line(["inspect", "--all", "--chart", str(tmp_path / "field.png")], capsys, 1, "could not write", "field.png")
    assert list(tmp_path.iterdir()) == []


def test_on_dev_full_the_write_fails_whole_and_a_full_fallback_too_is_one_error(tmp_path, monkeypatch):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    with open("/dev/full", "wb") as handle, pytest.raises(OSError) as caught:
        output._write_bytes(handle, b"x" * 65536)
    assert caught.value.errno == errno.ENOSPC

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(output, "_temporary_beside", full)
    with pytest.raises(WriteError, match=r"could not write .*results\.json .*nor .*sdshape-results-"):
        output.write_or_fall_back(tmp_path / "results.json", "{}")


# -- numbers: every numeric flag of every command ----------------------------------------------------


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser(backend_flags=True)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_numeric_flag_of_every_command_is_declared_with_its_bounds():
    """No flag takes a bare int or float: each has a Bounds, which also says its range in --help."""
    numeric = 0
    for name, command in _commands().items():
        for action in command._actions:
            assert action.type not in (int, float), f"sdshape {name} {action.option_strings}: no bounds"
            if isinstance(action.type, Bounds):
                numeric += 1
                assert action.type.describe() in (action.help or ""), (name, action.option_strings)
    assert numeric >= 25
    for f in RunOptions.__dataclass_fields__.values():
        assert f.metadata["kind"] is None or isinstance(f.metadata["kind"], Bounds), f.name


ABSURD = [
    # (argv, words the one line must hold)
    (["compare", "A", "B", "--threshold", "5"], "--threshold must be a fraction below 1, got 5; did you mean 0.05?"),
    (["compare", "A", "B", "--threshold", "-0.1"], "--threshold must be a fraction at least 0"),
    (["compare", "A", "B", "--threshold", "nan"], "--threshold must be a fraction at least 0 and below 1, got nan"),
    (["compare", "A", "B", "--memory-threshold", "10"], "--memory-threshold must be a fraction below 1"),
    (["compare", "A", "B", "--energy-threshold", "inf"], "--energy-threshold must be a fraction"),
    (["compare", "A", "B", "--alpha", "0"], "--alpha must be a significance level above 0"),
    (["compare", "A", "B", "--alpha", "1"], "--alpha must be a significance level below 1"),
    (["compare", "A", "B", "--run-to-run", "2"], "--run-to-run must be a fraction below 1, got 2; did you mean 0.02?"),
    (["history", "D", "--threshold", "25"], "--threshold must be a fraction below 1, got 25; did you mean 0.25?"),
    (["history", "D", "--run-to-run", "-1"], "--run-to-run must be a fraction at least 0"),
    (["shapes", "--budget", "inf"], "--budget must be a number of parameters above 0 and at most 1e+12, got inf"),
    (["shapes", "--budget", "nan"], "--budget must be a number of parameters"),
    (["shapes", "--budget", "0"], "--budget must be a number of parameters above 0, got 0"),
    (["shapes", "--budget", "-5"], "--budget must be a number of parameters above 0"),
    (["shapes", "--budget", "1e13"], "at most 1e+12"),
    (["shapes", "--budget", "lots"], "--budget must be a number, got 'lots'"),
    (["fit", "sd15", "--resolution", "1000000"], "--resolution must be a multiple of 8, at most 16384"),
    (["fit", "sd15", "--resolution", "100"], "--resolution must be a multiple of 8 (latents are 1/8 of the image)"),
    (["fit", "sd15", "--steps", "1000000000"], "--steps must be at most 1000"),
    (["fit", "sd15", "--batch", "0"], "--batch must be at least 1"),
    (["fit", "sd15", "--batch", "1e9"], "--batch must be a whole number, got '1e9'"),
    (["inspect", "sd15", "--resolution", "1000000"], "--resolution must be a multiple of 8, at most 16384"),
    (["inspect", "sd15", "--steps", "-3"], "--steps must be at least 1"),
    (["matrix", "M", "--declare-gpus", "0"], "--declare-gpus must be at least 1"),
    (["matrix", "M", "--declare-gpus", "1000000"], "--declare-gpus must be at most 1024"),
    (["run", "--target-ci", "5"], "--target-ci must be a fraction below 1"),
    (["run", "--target-ci", "nan"], "--target-ci must be a fraction above 0 and below 1, got nan"),
    (["run", "--max-time", "inf"], "--max-time must be above 0 and at most 3600 seconds, got inf"),
    (["run", "--max-rounds", "2"], "--max-rounds must be at least 5"),
    (["run", "--sample-interval", "1e9"], "--sample-interval must be at most 3600 seconds"),
    (["run", "--seq-len", "0"], "--seq-len must be at least 1"),
    (["run", "--warmup", "-1"], "--warmup must be at least 0"),
    (["run", "--seed", "2.5"], "--seed must be a whole number"),
    (["shapes", "--budget", "1e9", "--steps", "0"], "--steps must be at least 1"),
]


@pytest.mark.parametrize("argv,expected", ABSURD, ids=[" ".join(a) for a, _ in ABSURD])
def test_absurd_numbers_are_one_line_before_anything_is_read(argv, expected, capsys, no_work):
    one_line(argv, capsys, 2, expected)


def test_numbers_that_come_without_the_parser_meet_the_same_bounds():
    from sdshape.config.plan import resolve

    with pytest.raises(UsageError, match="--target-ci must be a fraction above 0 and below 1, got nan"):
        RunOptions(target_ci=float("nan")).check()
    with pytest.raises(UsageError, match="--batch must be at most 4096"):
        resolve(shape="tiny", device="cpu", batch=10**6)
    with pytest.raises(UsageError, match="--steps must be a whole number, got True"):
        resolve(shape="tiny", device="cpu", steps=True)
    assert FRACTION.check("x", 0) == 0 and FRACTION("0.05") == 0.05


def test_a_thresholds_file_meets_the_flags_bounds(tmp_path, capsys):
    overrides = tmp_path / "t.toml"
    for body, expected in (
        ("time = 5", "time must be a fraction below 1, got 5; did you mean 0.05?"),
        ("alpha = 0", "alpha must be a significance level above 0"),
        ("memory = nan", "memory must be a fraction at least 0 and below 1, got nan"),
    ):
        overrides.write_text(f'[[override]]\nstage = "vae_decode"\n{body}\n')
        err = one_line(["compare", str(RESULTS), str(RESULTS), "--thresholds", str(overrides)], capsys, 2, expected)
        assert f"--thresholds {overrides}: override #1" in err


def test_a_peak_beyond_the_machine_still_asks_for_force_size(capsys, monkeypatch):
    """Within the bounds, what memory cannot hold is still refused with the static model's estimate."""
    monkeypatch.setattr("sdshape.feasibility.preflight.device_memory", lambda device: (2**30, "available"))
    argv = ["run", "--shape", "tiny", "--device", "cpu", "--resolution", "16384", "--steps", "1", "--rounds", "1"]
    one_line(argv, capsys, 2, "pass --force-size to run it anyway")


# -- the GPU catalog ---------------------------------------------------------------------------------


def _card(tmp_path: Path, **figures: object) -> Path:
    values = {
        "architecture": '"ampere"',
        "sms": 10,
        "vram_gib": 11,
        "bandwidth_gbs": 616,
        "fp16_tflops_fp32_acc": 56.9,
        "fp16_tflops_fp16_acc": 113.8,
    }
    values.update(figures)
    body = "".join(f"{key} = {value}\n" for key, value in values.items())
    path = tmp_path / "mine.toml"
    path.write_text(f'[gpu."Mine"]\n{body}source = "a datasheet"\n')
    return path


@pytest.mark.parametrize(
    "figure,expected",
    [
        ({"vram_gib": "1e308"}, "vram_gib must be at most 4096 GiB, got 1e+308"),
        ({"bandwidth_gbs": 0}, "bandwidth_gbs must be at least 10 GB/s, got 0"),
        ({"bandwidth_gbs": "1e-300"}, "bandwidth_gbs must be at least 10 GB/s, got 1e-300"),
        ({"fp16_tflops_fp32_acc": "inf"}, "fp16_tflops_fp32_acc must be between 0.1 and 100000 TFLOP/s, got inf"),
        ({"fp16_tflops_fp16_acc": "nan"}, "fp16_tflops_fp16_acc must be between 0.1 and 100000 TFLOP/s, got nan"),
        ({"sms": 0}, "sms (streaming multiprocessors) must be at least 1"),
        ({"vram_gib": "true"}, "vram_gib must be a number, got True"),
    ],
    ids=["vram-1e308", "bandwidth-0", "bandwidth-1e-300", "tflops-inf", "tflops-nan", "sms-0", "vram-bool"],
)
def test_catalog_figures_out_of_range_are_one_line_naming_file_card_and_field(figure, expected, tmp_path, capsys):
    path = _card(tmp_path, **figure)
    err = one_line(["fit", "sd15", "--gpu-catalog", str(path), "--gpu", "Mine"], capsys, 2, expected)
    assert f"--gpu-catalog {path}: gpu 'Mine':" in err
    one_line(["report", str(RESULTS), "--gpu-catalog", str(path), "--out", str(tmp_path / "r")], capsys, 2, expected)


def test_fit_on_the_slowest_card_the_catalog_allows_prints_no_infinity(tmp_path, capsys):
    path = _card(tmp_path, vram_gib=0.5, bandwidth_gbs=10, fp16_tflops_fp32_acc=0.1, fp16_tflops_fp16_acc=0.1)
    assert main(["fit", "tiny", "--gpu-catalog", str(path), "--gpu", "Mine", "--steps", "1000"]) == 0
    printed = capsys.readouterr().out.lower()
    assert "inf" not in printed.replace("info", "") and "nan" not in printed
    assert main(["fit", "tiny", "--gpu-catalog", str(path), "--gpu", "Mine", "--json"]) == 0
    answer = capsys.readouterr().out
    assert "Infinity" not in answer and "NaN" not in answer
    assert json.loads(answer)["cards"][0]["gpu"] == "Mine"


def test_report_shows_the_users_catalog_cards_and_says_why_the_matrix_has_no_cell(tmp_path, capsys):
    mine = _card(tmp_path)
    mine.write_text(
        mine.read_text()
        + '[gpu."T4"]\nvram_gib = 15\nbandwidth_gbs = 320\nfp16_tflops_fp32_acc = 65\n'
        + 'fp16_tflops_fp16_acc = 65\nsource = "my own figures"\n'
    )
    run = ROOT / "results" / "cpu-amd-epyc" / "2026-11-22-sd15-eager-fp32.json"
    assert main(["report", str(run), "--gpu-catalog", str(mine), "--out", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / "report.md").read_text()
    matrix = text.split("## Feasibility matrix", 1)[1].split("\n## ", 1)[0]
    assert "| Mine (your catalog) | not modelled here |" in matrix
    assert "| T4 (your catalog) |" in matrix and "\n| T4 |" not in matrix  # its own figures, not the bundled
    assert "Not modelled in this matrix: `T4`, `Mine`" in matrix and "sdshape fit SHAPE --gpu-catalog" in matrix
    assert "| Mine | 11 GiB |" in text  # the run's measured memory per policy covers it
    assert cat.load_catalog(mine)["Mine"].vram_gib == 11
