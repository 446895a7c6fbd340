"""sdshape compare on synthetic result files of known noise, and every bad-input case."""

from __future__ import annotations

import json
import random

import pytest

from sdshape.cli import main
from sdshape.result.document import stats_dict

MACHINE = {
    "gpu_name": "NVIDIA L4",
    "driver_version": "550.54.15",
    "torch_version": "2.13.0",
    "cuda_runtime_version": "12.4",
}


def rounds(center: float, spread: float, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(center, spread) for _ in range(n)]


def row(stage="denoise_loop", data=None, status="ok", memory=None, energy=None, backend="eager", message=None):
    info = {
        "stage": stage,
        "shape": "sd15",
        "backend": backend,
        "precision": "fp16",
        "batch": 1,
        "resolution": 512,
        "steps": 30,
        "status": status,
        "message": message,
        "energy_j": energy,
        "timer": "cuda_event",
        "warmup_rounds": 2,
        "rounds": len(data or []),
        "memory": {"nvml_process_peak_bytes": memory},
    }
    return {"name": stage, "extra_info": info, "stats": stats_dict(data) if data and status == "ok" else None}


def write(path, rows, machine=None):
    path.write_text(json.dumps({"machine_info": machine or MACHINE, "benchmarks": rows, "datetime": "2026-11-01"}))
    return path


def verdicts(tmp_path, base_rows, new_rows, *options, machine_new=None, capsys=None):
    base = write(tmp_path / "base.json", base_rows)
    new = write(tmp_path / "new.json", new_rows, machine_new)
    code = main(["compare", str(base), str(new), "--json", *options])
    results = json.loads(capsys.readouterr().out)
    return code, {(r["id"]["stage"], r["id"]["backend"]): r for r in results}


def test_planted_slowdown_is_a_regression(tmp_path, capsys):
    base = write(tmp_path / "base.json", [row(data=rounds(1.00, 0.01, 10, 1))])
    new = write(tmp_path / "new.json", [row(data=rounds(1.10, 0.01, 10, 2))])
    assert main(["compare", str(base), str(new), "--json"]) == 1
    err = capsys.readouterr().err.strip()  # exit 1 says why on stderr too: a --json reader is not left guessing
    assert err == "sdshape: 1 of 1 ids regressed or got a worse status"
    code, found = verdicts(
        tmp_path, [row(data=rounds(1.00, 0.01, 10, 1))], [row(data=rounds(1.10, 0.01, 10, 2))], capsys=capsys
    )
    result = found[("denoise_loop", "eager")]
    assert code == 1
    assert result["verdict"] == "regression" and result["metric"] == "time"
    assert result["change"] == pytest.approx(0.10, abs=0.02) and result["p_value"] < 0.01


def test_a_change_within_run_to_run_noise_is_not_a_regression(tmp_path, capsys):
    """Rounds see only their own process: a 10% gap between two runs of a series whose runs scatter by
    10% is noise, however tight each run's rounds (--run-to-run, or the store's history)."""
    base, new = [row(data=rounds(1.00, 0.01, 10, 1))], [row(data=rounds(1.10, 0.01, 10, 2))]
    code, found = verdicts(tmp_path, base, new, "--run-to-run", "0.10", capsys=capsys)
    time = found[("denoise_loop", "eager")]["metrics"]["time"]
    assert code == 0 and time["verdict"] == "unchanged" and "within run-to-run noise" in time["reason"]
    code, found = verdicts(tmp_path, base, [row(data=rounds(1.60, 0.01, 10, 2))], "--run-to-run", "0.05", capsys=capsys)
    assert code == 1 and found[("denoise_loop", "eager")]["metrics"]["time"]["run_to_run"] == 0.05


def test_noise_alone_is_not_flagged(tmp_path, capsys):
    code, found = verdicts(
        tmp_path, [row(data=rounds(1.0, 0.05, 10, 3))], [row(data=rounds(1.0, 0.05, 10, 4))], capsys=capsys
    )
    assert code == 0 and found[("denoise_loop", "eager")]["verdict"] == "unchanged"


def test_large_but_insignificant_change_is_noise(tmp_path, capsys):
    base = [1.00, 1.40, 0.90, 1.60, 0.95]
    new = [1.50, 0.92, 1.45, 0.98, 1.55]  # median +45%, but the rounds overlap completely
    code, found = verdicts(tmp_path, [row(data=base)], [row(data=new)], capsys=capsys)
    result = found[("denoise_loop", "eager")]
    assert code == 0 and result["verdict"] == "unchanged" and result["p_value"] > 0.05
    assert "not significant" in result["reason"]


def test_significant_change_under_the_floor_is_not_a_regression(tmp_path, capsys):
    code, found = verdicts(
        tmp_path, [row(data=rounds(1.00, 0.001, 20, 5))], [row(data=rounds(1.02, 0.001, 20, 6))], capsys=capsys
    )
    result = found[("denoise_loop", "eager")]
    assert code == 0 and result["verdict"] == "unchanged" and "floor" in result["reason"]
    code, found = verdicts(
        tmp_path,
        [row(data=rounds(1.00, 0.001, 20, 5))],
        [row(data=rounds(1.02, 0.001, 20, 6))],
        "--threshold",
        "0.01",
        capsys=capsys,
    )
    assert code == 1 and found[("denoise_loop", "eager")]["verdict"] == "regression"


def test_too_few_rounds_is_undecided_not_a_guess(tmp_path, capsys):
    code, found = verdicts(tmp_path, [row(data=[1.0, 1.01, 0.99])], [row(data=[1.5, 1.51, 1.49])], capsys=capsys)
    result = found[("denoise_loop", "eager")]
    assert code == 0 and result["verdict"] == "undecided" and "cannot reach" in result["reason"]


def test_memory_growth_and_energy(tmp_path, capsys):
    steady = rounds(1.0, 0.01, 8, 7)
    code, found = verdicts(
        tmp_path,
        [row(data=steady, memory=4 << 30, energy=100.0)],
        [row(data=steady, memory=5 << 30, energy=101.0)],
        capsys=capsys,
    )
    result = found[("denoise_loop", "eager")]
    assert code == 1 and result["verdict"] == "regression" and result["metric"] == "memory"
    assert result["metrics"]["energy"]["verdict"] == "unchanged"
    assert result["metrics"]["memory"]["source"] == "nvml_process_peak_bytes"


def test_new_out_of_memory_is_a_status_change_for_the_worse(tmp_path, capsys):
    code, found = verdicts(
        tmp_path,
        [row(stage="vae_decode", data=rounds(0.2, 0.001, 8, 8))],
        [row(stage="vae_decode", status="oom", message="CUDA out of memory")],
        capsys=capsys,
    )
    result = found[("vae_decode", "eager")]
    assert code == 1 and result["verdict"] == "status_change" and result["worse"]
    assert (result["base"], result["new"]) == ("ok", "oom")
    code, found = verdicts(
        tmp_path,
        [row(stage="vae_decode", status="oom")],
        [row(stage="vae_decode", data=rounds(0.2, 0.001, 8, 8))],
        capsys=capsys,
    )
    assert code == 0 and not found[("vae_decode", "eager")]["worse"]


def test_ids_on_one_side_only(tmp_path, capsys):
    data = rounds(1.0, 0.01, 8, 9)
    code, found = verdicts(
        tmp_path,
        [row(data=data), row(stage="vae_decode", data=data)],
        [row(data=data), row(data=data, backend="compile")],
        capsys=capsys,
    )
    assert code == 0
    assert found[("vae_decode", "eager")]["verdict"] == "only_base"
    assert found[("denoise_loop", "compile")]["verdict"] == "only_new"


def test_environment_diff_is_shown(tmp_path, capsys):
    base = write(tmp_path / "base.json", [row(data=rounds(1.0, 0.01, 8, 10))])
    new = write(tmp_path / "new.json", [row(data=rounds(1.0, 0.01, 8, 11))], {**MACHINE, "driver_version": "560.28.03"})
    assert main(["compare", str(base), str(new)]) == 0
    out = capsys.readouterr().out
    assert "driver_version" in out and "550.54.15" in out and "560.28.03" in out


def test_threshold_overrides_most_specific_wins(tmp_path, capsys):
    overrides = tmp_path / "thresholds.toml"
    overrides.write_text(
        '[[override]]\nstage = "vae_decode"\ntime = 0.20\n\n'
        '[[override]]\nstage = "vae_decode"\nbackend = "eager"\ntime = 0.02\n'
    )
    base = [
        row(stage="vae_decode", data=rounds(1.0, 0.005, 10, 12)),
        row(stage="vae_decode", backend="compile", data=rounds(1.0, 0.005, 10, 13)),
    ]
    new = [
        row(stage="vae_decode", data=rounds(1.10, 0.005, 10, 14)),
        row(stage="vae_decode", backend="compile", data=rounds(1.10, 0.005, 10, 15)),
    ]
    code, found = verdicts(tmp_path, base, new, "--thresholds", str(overrides), capsys=capsys)
    assert found[("vae_decode", "eager")]["verdict"] == "regression"  # the 2% rule (two fields) beats the 20% one
    assert found[("vae_decode", "compile")]["verdict"] == "unchanged"  # only the 20% rule matches
    assert code == 1


BAD_FILES = [
    ("notjson.json", "{ not json", "not JSON"),
    ("list.json", "[1, 2]", "expected a JSON object with a 'benchmarks' list"),
    ("empty.json", '{"benchmarks": []}', "holds no results"),
    ("foreign.json", '{"benchmarks": [{"name": "test_x", "stats": {}}]}', "has no extra_info"),
    (
        "partial.json",
        '{"benchmarks": [{"name": "t", "extra_info": {"stage": "denoise_loop"}}]}',
        "lacks sdshape fields",
    ),
]


@pytest.mark.parametrize("name,text,message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_exit_2_with_one_line(tmp_path, capsys, name, text, message):
    good = write(tmp_path / "good.json", [row(data=[1.0, 1.0, 1.0, 1.0])])
    bad = tmp_path / name
    bad.write_text(text)
    assert main(["compare", str(good), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and name in err


def test_unreadable_and_missing_files_and_bad_thresholds(tmp_path, capsys):
    good = write(tmp_path / "good.json", [row(data=[1.0, 1.0, 1.0, 1.0])])
    assert main(["compare", str(good), str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["compare", str(good), str(tmp_path)]) == 2
    assert "cannot read" in capsys.readouterr().err
    bad_toml = tmp_path / "t.toml"
    bad_toml.write_text('[[override]]\nstage = "vae_decode"\nspeed = 0.1\n')
    assert main(["compare", str(good), str(good), "--thresholds", str(bad_toml)]) == 2
    assert "unknown keys ['speed']" in capsys.readouterr().err
    assert main(["compare", str(good), str(good), "--threshold", "-1"]) == 2
    assert "--threshold must be a fraction" in capsys.readouterr().err


def test_a_metric_measured_under_two_methods_is_method_changed_not_a_regression(tmp_path, capsys):
    """Memory 1 (the first GPU run's baseline) against memory 2 (settled baselines): not comparable."""
    base = row(data=rounds(1.0, 0.01, 10, 1), memory=4 << 30)
    new = row(data=rounds(1.0, 0.01, 10, 2), memory=6 << 30)
    base["extra_info"]["methods"] = {"time": 1, "memory": 1, "energy": 2}
    new["extra_info"]["methods"] = {"time": 1, "memory": 2, "energy": 2}
    code, found = verdicts(tmp_path, [base], [new], capsys=capsys)
    result = found[("denoise_loop", "eager")]
    assert code == 0 and result["verdict"] == "method_changed"
    assert result["metrics"]["memory"]["verdict"] == "method_changed" and "memory method 1 -> 2" in result["reason"]


def test_a_change_of_residency_policy_is_not_a_regression(tmp_path):
    """Offload moves weights inside the timed call: the same stage under model offload is slower by design."""
    import dataclasses

    from sdshape.regression.compare import Floors, compare_rows
    from sdshape.result.model import Conditions, ResultId, StageResult, Timing

    rid = ResultId("pipeline", "sd15", "eager", "fp16", 1, 512, 50)
    base = StageResult(rid, timing=Timing(rounds_s=[1.0, 1.01, 0.99, 1.0, 1.0]), conditions=Conditions(device="cuda"))
    new = dataclasses.replace(
        base, timing=Timing(rounds_s=[3.0, 3.01, 2.99, 3.0, 3.0]),
        conditions=Conditions(device="cuda", policy="model_offload"),
    )  # fmt: skip
    verdict = compare_rows(base, new, Floors())
    assert verdict.verdict == "method_changed" and "all_resident -> model_offload" in verdict.reason
    same = compare_rows(base, dataclasses.replace(new, conditions=Conditions(device="cuda")), Floors())
    assert same.verdict == "regression"
