"""sdshape history: step detection on a planted step, events and the report, bad input; --save."""

from __future__ import annotations

import json

import pytest

from sdshape.cli import main
from sdshape.regression.history import detect_steps
from sdshape.regression.points import Point
from sdshape.result.output import save
from tests.regression.test_compare import MACHINE, rounds, row


def _points(levels, spread=0.002):
    return [Point(f"2026-10-0{i + 1}", None, level, spread, 10, None, {}, {}) for i, level in enumerate(levels)]


def test_planted_step_is_found_and_noise_is_not():
    steps = detect_steps(_points([0.100, 0.101, 0.099, 0.120, 0.121, 0.119]))
    assert len(steps) == 1
    assert steps[0].after == 2 and steps[0].change > 0.15 and steps[0].z > 4
    assert detect_steps(_points([0.100, 0.101, 0.099, 0.100, 0.102, 0.098])) == []
    # A shift smaller than the 5% floor is not a step, however consistent.
    assert detect_steps(_points([0.100, 0.100, 0.100, 0.103, 0.103, 0.103], spread=0.0001)) == []


def test_two_steps():
    steps = detect_steps(_points([0.10, 0.10, 0.13, 0.13, 0.10, 0.10]))
    assert [s.after for s in steps] == [1, 3]


def test_history_report_from_files(tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    drivers = ["535.104.05", "545.23.08", "550.54.15", "555.42.02", "560.28.03"]
    levels = [1.00, 1.00, 1.01, 1.25, 1.25]
    for index, (driver, level) in enumerate(zip(drivers, levels, strict=True)):
        machine = {**MACHINE, "driver_version": driver}
        document = {
            "machine_info": machine,
            "datetime": f"2026-10-0{index + 1}T12:00:00",
            "benchmarks": [
                row(data=rounds(level, 0.005, 10, index)),
                row(stage="vae_decode", data=rounds(0.3, 0.002, 10, 50 + index)),
            ],
        }
        (folder / f"run-{index}.json").write_text(json.dumps(document))
    (folder / "notes.json").write_text('{"not": "results"}')
    out = tmp_path / "report"
    assert main(["history", str(folder), "--out", str(out)]) == 1  # a regression that persisted two runs
    assert "1 regression(s)" in capsys.readouterr().out
    report = (out / "history.md").read_text()
    assert "regression +2" in report and "at driver 550.54.15 -> 555.42.02" in report
    assert "persisted over 2 runs" in report
    assert "Skipped files" in report and "notes.json" in report
    charts = sorted(p.name for p in out.glob("*.png"))
    assert len(charts) == 2 and all(name.startswith("nvidia-l4") for name in charts)
    assert (out / charts[0]).stat().st_size > 10_000


def test_history_bad_input(tmp_path, capsys):
    assert main(["history", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main(["history", str(tmp_path)]) == 2
    assert "no result files" in capsys.readouterr().err
    (tmp_path / "a.json").write_text(json.dumps({"machine_info": MACHINE, "benchmarks": [row(data=[1.0, 1.0])]}))
    assert main(["history", str(tmp_path), "--gpu", "H100"]) == 2
    assert "no results for GPU 'H100'; found: NVIDIA L4" in capsys.readouterr().err


def test_save_never_overwrites(tmp_path):
    document = {"machine_info": {"gpu_name": "NVIDIA GeForce RTX 4090"}, "benchmarks": []}
    first = save(document, tmp_path, "sd15", ["eager"], "fp16")
    second = save(document, tmp_path, "sd15", ["eager"], "fp16")
    assert first.parent.name == "nvidia-geforce-rtx-4090"
    assert first.name.endswith("-sd15-eager-fp16.json") and second.name.endswith("-sd15-eager-fp16-2.json")
    cpu = save(
        {"machine_info": {"cpu_model": "AMD EPYC"}, "benchmarks": []}, tmp_path, "tiny", ["eager", "compile"], "fp32"
    )
    assert cpu.parent.name == "cpu-amd-epyc" and cpu.name.endswith("-tiny-eager+compile-fp32.json")


@pytest.mark.slow
def test_run_save(tmp_path, capsys):
    argv = [
        "run",
        "--shape",
        "tiny",
        "--device",
        "cpu",
        "--steps",
        "1",
        "--rounds",
        "1",
        "--warmup",
        "0",
        "--save",
        "--results-dir",
        str(tmp_path),
    ]
    assert main(argv) == 0
    saved = list(tmp_path.glob("cpu-*/*-tiny-eager-fp32.json"))
    assert len(saved) == 1 and "results saved to" in capsys.readouterr().out
    assert json.loads(saved[0].read_text())["benchmarks"]
