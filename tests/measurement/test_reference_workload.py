"""The reference workload (issue 28): measured once per run beside the model, carried in every row, kept by
the store, and used by ``history`` to say whether a step is the machine's or the software's."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest
import torch

from sdshape.cli import main
from sdshape.cli.parser import build_parser
from sdshape.config.options import BENCH, add_options
from sdshape.config.plan import resolve
from sdshape.measurement.reference_workload import HOST_TO_DEVICE_ON_CPU, measure
from sdshape.present.history_report import step_text
from sdshape.regression.attribution import MACHINE, NO_REFERENCE, SOFTWARE
from sdshape.regression.history import collect
from sdshape.regression.points import stored_observations
from sdshape.result.io import load
from sdshape.result.model import ResultId, StageResult
from sdshape.result.records import ReferenceFigure, ReferenceWorkload
from sdshape.run import campaign
from sdshape.run.benchsuite import SessionPool
from sdshape.store.db import STORE_SCHEMA_VERSION, open_store
from sdshape.store.ingest import add_file
from sdshape.store.read import result_files

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "results" / "examples" / "threads" / "1-two-threads.json"


def reference(gemm: float, copy: float = 20.0, conditions: str = "fp16 GEMM 4096x4096x4096 on cuda") -> dict:
    """A reference record as a GPU run writes it (the figures planted, not measured)."""
    figures = [
        ReferenceFigure(name="gemm", unit="TFLOP/s", median=gemm, low=gemm * 0.99, high=gemm * 1.01, spread=0.004,
                        repetitions=[gemm] * 9, calls_per_repetition=20, warmup=2, conditions=conditions),
        ReferenceFigure(name="device_copy", unit="GB/s", median=copy, low=copy, high=copy, spread=0.004,
                        repetitions=[copy] * 9, calls_per_repetition=10, warmup=2,
                        conditions="device-to-device copy of 256 MiB on cuda"),
        ReferenceFigure(name="host_to_device", unit="GB/s", conditions="on cpu", note=HOST_TO_DEVICE_ON_CPU),
    ]  # fmt: skip
    record = ReferenceWorkload(method=1, device="cuda", device_name="H200", timer="CUDA events", figures=figures)
    return record.to_json()


def make_run(folder: Path, index: int, scale: float, gemm: float | None, driver: str) -> Path:
    """The committed tiny run at another time and driver, its rounds scaled, with a reference (or none)."""
    document = json.loads(TEMPLATE.read_text())
    document["datetime"] = f"2026-12-{index + 1:02d}T10:00:00"
    document["machine_info"].update(gpu_name="H200", gpu_memory_bytes=141 << 30, driver_version=driver)
    for bench in document["benchmarks"]:
        stats = bench["stats"]
        stats["data"] = [value * scale for value in stats["data"]]
        for key in ("min", "max", "mean", "median", "q1", "q3", "iqr", "stddev"):
            if isinstance(stats.get(key), (int, float)):
                stats[key] *= scale
        if gemm is not None:
            bench["extra_info"]["reference"] = reference(gemm)
    path = folder / f"run-{index}.json"
    path.write_text(json.dumps(document))
    return path


def planted(folder: Path, gemm_after: float | None) -> list[Path]:
    """Eight runs, the model 25% slower from the fifth on (at a driver upgrade); the GEMM at 300 TFLOP/s
    within 0.3% before, ``gemm_after`` after (None: no reference recorded at all)."""
    folder.mkdir()
    paths = []
    for index in range(8):
        jitter = 1 + 0.003 * (-1) ** index
        after = index >= 4
        gemm = None if gemm_after is None else (gemm_after if after else 300.0) * jitter
        paths.append(make_run(folder, index, 1.25 if after else 1.0, gemm, "580.65" if after else "550.54"))
    return paths


def loop_step(timelines):
    loop = next(t for t in timelines if t.key["stage"] == "denoise_loop")
    assert [s.verdict for s in loop.steps] == ["regression"]
    return loop, loop.steps[0]


def test_the_cpu_reference_runs_and_gives_positive_finite_figures():
    record = measure(torch.device("cpu"))
    figures = {f.name: f for f in record.figures}
    assert record.device == "cpu" and record.method == 1 and record.cost_s > 0
    for name in ("gemm", "device_copy"):
        f = figures[name]
        assert math.isfinite(f.median) and f.median > 0 and f.low <= f.median <= f.high, f
        assert len(f.repetitions) == 9 and f.warmup == 2 and f.spread >= 0
    assert figures["gemm"].conditions == "fp32 GEMM 384x384x384 on cpu" and figures["gemm"].unit == "TFLOP/s"
    h2d = figures["host_to_device"]
    assert h2d.median is None and h2d.repetitions == [] and h2d.note == HOST_TO_DEVICE_ON_CPU  # stated, no number
    assert set(record.summary()) == {"gemm", "device_copy"}


def test_the_reference_round_trips_through_a_result_file_and_old_files_read_without_it(tmp_path):
    old = load(TEMPLATE)
    assert all(row.reference is None for row in old.rows.values())
    assert all("reference" not in row.to_extra_info() for row in old.rows.values())
    path = make_run(tmp_path, 0, 1.0, 312.0, "580.65")
    rows = load(path).rows.values()
    assert all(row.reference == ReferenceWorkload.from_json(reference(312.0)) for row in rows)
    assert all(row.to_extra_info()["reference"] == reference(312.0) for row in rows)
    assert next(iter(rows)).reference.summary()["gemm"]["median"] == 312.0


def test_a_reference_with_an_impossible_figure_is_refused_by_name(tmp_path, capsys):
    path = make_run(tmp_path, 0, 1.0, 312.0, "580.65")
    document = json.loads(path.read_text())
    document["benchmarks"][0]["extra_info"]["reference"]["figures"][0]["median"] = -1.0
    path.write_text(json.dumps(document))
    assert main(["compare", str(path), str(TEMPLATE)]) == 2
    assert "reference.figures[0].median = -1.0" in capsys.readouterr().err


def test_the_reference_round_trips_through_the_store(tmp_path):
    store = str(tmp_path / "store.sqlite")
    engine = open_store(store)
    add_file(engine, make_run(tmp_path, 0, 1.0, 312.0, "580.65"))
    stored = result_files(open_store(store, create=False))[0]
    assert all(row.reference == ReferenceWorkload.from_json(reference(312.0)) for row in stored.rows.values())
    points = [o.point for o in stored_observations(open_store(store, create=False))]
    assert points and all(p.reference["gemm"]["median"] == 312.0 for p in points)
    assert points[0].reference["gemm"]["conditions"] == "fp16 GEMM 4096x4096x4096 on cuda (method 1)"


def test_a_store_of_schema_1_reads_as_it_is_and_a_writer_migrates_it(tmp_path):
    """A schema-1 store (no ``reference`` column) made by dropping the column: history reads it with no
    reference; the next writing command adds the column and fills it from each row's extra_info."""
    store = tmp_path / "store.sqlite"
    add_file(open_store(str(store)), make_run(tmp_path, 0, 1.0, 312.0, "580.65"))
    with sqlite3.connect(store) as connection:
        connection.execute("ALTER TABLE rows DROP COLUMN reference")
        connection.execute("UPDATE sdshape_store SET value = '1' WHERE key = 'schema_version'")
    points = [o.point for o in stored_observations(open_store(str(store), create=False))]
    assert points and all(p.reference is None for p in points)
    assert all(row.reference is not None for row in result_files(open_store(str(store), create=False))[0].rows.values())
    open_store(str(store))  # a writer
    with sqlite3.connect(store) as connection:
        version = connection.execute("SELECT value FROM sdshape_store WHERE key = 'schema_version'").fetchone()[0]
        held = [json.loads(value)["gemm"]["median"] for (value,) in connection.execute("SELECT reference FROM rows")]
    assert int(version) == STORE_SCHEMA_VERSION == 2 and held == [312.0] * 4
    points = [o.point for o in stored_observations(open_store(str(store), create=False))]
    assert all(p.reference["gemm"]["median"] == 312.0 for p in points)


def test_a_step_the_reference_took_too_is_the_machines(tmp_path):
    timelines = collect([load(p) for p in planted(tmp_path / "runs", gemm_after=270.0)])
    loop, step = loop_step(timelines)
    assert step.attribution.verdict == MACHINE
    text = step_text(loop)
    assert "reference: GEMM 300 -> 270 TFLOP/s (-10.0%" in text and "at the same step: machine/driver" in text


def test_a_step_only_the_model_took_is_the_softwares(tmp_path):
    timelines = collect([load(p) for p in planted(tmp_path / "runs", gemm_after=300.0)])
    loop, step = loop_step(timelines)
    assert step.attribution.verdict == SOFTWARE
    assert "GEMM 300 -> 300 TFLOP/s (+0.0%" in step_text(loop) and "device copy 20 -> 20 GB/s" in step_text(loop)


def test_a_step_without_a_reference_says_so_in_the_store_and_the_report(tmp_path):
    store = str(tmp_path / "store.sqlite")
    engine = open_store(store)
    for path in planted(tmp_path / "runs", gemm_after=None):
        add_file(engine, path)
    out = tmp_path / "history"
    assert main(["history", "--store", store, "--out", str(out)]) == 1
    assert "reference: no reference recorded" in (out / "history.md").read_text()
    _, step = loop_step(collect(stored_observations(open_store(store, create=False))))
    assert step.attribution.verdict == NO_REFERENCE


def test_the_machine_attribution_reads_the_same_from_the_store(tmp_path):
    store = str(tmp_path / "store.sqlite")
    engine = open_store(store)
    for path in planted(tmp_path / "runs", gemm_after=270.0):
        add_file(engine, path)
    _, step = loop_step(collect(stored_observations(open_store(store, create=False))))
    assert step.attribution.verdict == MACHINE and step.attribution.figures[0].name == "gemm"


def test_no_reference_is_a_run_option_of_run_and_the_bench_suite():
    args = build_parser(backend_flags=True).parse_args(["run", "--no-reference"])
    assert args.reference_workload is False
    assert build_parser(backend_flags=True).parse_args(["run"]).reference_workload is True
    assert resolve(shape="tiny", device="cpu", reference_workload=False).options.reference_workload is False
    flags: list[str] = []
    add_options(lambda flag, *_, **__: flags.append(flag), BENCH)  # pytest bench/'s options
    assert "--no-reference" in flags


def _fake_rows(plan, label):
    rid = ResultId(
        "pipeline",
        plan.options.shape,
        label,
        plan.options.precision,
        plan.options.batch,
        plan.options.resolution,
        plan.options.steps,
    )
    return [StageResult(rid)], {}


@pytest.mark.parametrize("wanted", [True, False], ids=["measured", "no-reference"])
def test_every_row_of_a_run_carries_the_reference_and_no_reference_leaves_it_out(monkeypatch, wanted):
    """The campaign's wiring, its sessions replaced by rows made up here (the reference itself is real)."""
    plan = resolve(shape="tiny", device="cpu", backend="eager", parity=False, reference_workload=wanted)
    monkeypatch.setattr(campaign.Campaign, "measure", lambda self, label: _fake_rows(self.plan, label))
    collected: list[StageResult] = []
    run = campaign.Campaign(plan)
    run.run(on_session=lambda results, _: collected.extend(results))
    assert collected and all((row.reference is not None) == wanted for row in collected)
    if wanted:
        assert collected[0].reference is run.reference_workload and collected[0].reference.device == "cpu"
    pool = SessionPool(plan)
    entries = [{"extra_info": {"stage": "pipeline"}}]
    pool.stamp_reference_workload(entries)
    assert ("reference" in entries[0]["extra_info"]) == wanted


@pytest.mark.slow
def test_a_tiny_run_writes_the_reference_in_every_row(tmp_path, capsys):
    out = tmp_path / "run.json"
    argv = ["run", "--shape", "tiny", "--device", "cpu", "--steps", "2", "--rounds", "2", "--warmup", "1"]
    assert main([*argv, "--no-parity", "--json", str(out)]) == 0
    rows = load(out).rows.values()
    assert len(rows) == 4 and len({json.dumps(r.reference.to_json()) for r in rows}) == 1
    assert json.loads(out.read_text())["options"]["reference_workload"] is True
