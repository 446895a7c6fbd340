"""The results store (SQLite by default, PostgreSQL by URL): ingest, dedupe, concurrency, crashes, corruption,
and history's timelines with their events, against both backends where a server is given."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sdshape.cli import main
from sdshape.core.errors import UsageError
from sdshape.regression.history import collect
from sdshape.result.io import load
from sdshape.store.db import files, open_store, rounds, rows
from sdshape.store.ingest import add_file
from sdshape.store.read import find_file, result_files
from sdshape.store.series import SERIES_FIELDS, SeriesKey, digest, values_of

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "results" / "examples" / "threads" / "1-two-threads.json"
PYTEST_BENCH = ROOT / "tests" / "data" / "gpu-runs" / "2026-11-22-h100" / "pytest-bench-sd15-eager-fp16.json"
POSTGRES = os.environ.get("SDSHAPE_TEST_POSTGRES")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def make_run(folder: Path, name: str, when: str, scale: float = 1.0, **machine: object) -> Path:
    """A copy of the committed tiny run, at another time and machine, its rounds scaled by ``scale``."""
    document = json.loads(TEMPLATE.read_text())
    document["datetime"] = when
    document["machine_info"].update(machine)
    for bench in document["benchmarks"]:
        stats = bench["stats"]
        stats["data"] = [value * scale for value in stats["data"]]
        for key in ("min", "max", "mean", "median", "q1", "q3", "iqr", "stddev"):
            if isinstance(stats.get(key), (int, float)):
                stats[key] *= scale
    path = folder / name
    path.write_text(json.dumps(document))
    return path


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    if request.param == "sqlite":
        yield str(tmp_path / "store.sqlite")
        return
    if not POSTGRES:
        pytest.skip("no PostgreSQL server: set SDSHAPE_TEST_POSTGRES=postgresql://... (.ci/run starts one)")
    from sqlalchemy import create_engine, text

    database = f"sdshape_test_{os.getpid()}_{abs(hash(request.node.name)) % 10**8}"
    admin = create_engine(POSTGRES.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {database}"))
        connection.execute(text(f"CREATE DATABASE {database}"))
    url = POSTGRES.rsplit("/", 1)[0] + f"/{database}"
    yield url
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
    admin.dispose()


def _count(engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def test_the_same_file_twice_adds_nothing_and_rows_keep_their_rounds(store, tmp_path):
    engine = open_store(store)
    first = add_file(engine, TEMPLATE)
    again = add_file(engine, TEMPLATE)
    assert first.added and first.rows == 4 and not again.added and "already in the store" in again.note
    assert (_count(engine, files), _count(engine, rows), _count(engine, rounds)) == (1, 4, 40)
    stored = find_file(engine, first_hash(engine)[:8])
    original = load(TEMPLATE)
    for key, row in original.rows.items():
        assert stored.rows[key].rounds == row.rounds and stored.rows[key].median == row.median
    assert stored.machine_info == original.machine_info


def first_hash(engine) -> str:
    with engine.connect() as connection:
        return connection.execute(select(files.c.content_hash)).scalar_one()


def test_pytest_benchmark_files_go_in_too(store):
    engine = open_store(store)
    done = add_file(engine, PYTEST_BENCH)
    assert done.added and done.rows == len(load(PYTEST_BENCH).rows)


def test_a_hostile_file_is_refused_and_nothing_of_it_is_stored(store, tmp_path):
    document = json.loads(TEMPLATE.read_text())
    document["benchmarks"][1]["stats"]["data"][3] = -1.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))
    engine = open_store(store)
    with pytest.raises(UsageError, match="is not a positive, finite number of seconds"):
        add_file(engine, bad)
    assert _count(engine, files) == 0 and _count(engine, rows) == 0


def test_the_series_key_never_holds_the_hostname_and_is_explicit():
    info = load(TEMPLATE)
    row = next(iter(info.rows.values()))
    values = values_of({**row.id.as_dict(), "backend_options": {}}, info.machine_info)
    moved = values_of({**row.id.as_dict(), "backend_options": {}}, {**info.machine_info, "node": "another-ci-vm"})
    assert "hostname" not in SERIES_FIELDS and digest(values, SERIES_FIELDS) == digest(moved, SERIES_FIELDS)
    upgraded = values_of({**row.id.as_dict(), "backend_options": {}}, {**info.machine_info, "torch_version": "9.9"})
    assert digest(values, SERIES_FIELDS) != digest(upgraded, SERIES_FIELDS)
    key = SeriesKey.chosen(ignore=["torch_version"])
    assert "torch_version" not in key.fields and "torch_version" not in key.events
    with pytest.raises(UsageError, match="unknown series field 'gpu'"):
        SeriesKey.chosen(series_by=["gpu", "stage"])
    with pytest.raises(UsageError, match="must keep stage"):
        SeriesKey.chosen(ignore=["stage"])


def test_history_attributes_a_persisting_step_to_the_driver_event_and_exits_1(store, tmp_path, capsys):
    folder = tmp_path / "runs"
    folder.mkdir()
    drivers = ["550.54"] * 4 + ["580.65"] * 4
    for index, driver in enumerate(drivers):
        scale = 1.0 if index < 4 else 1.25
        gpu = {"gpu_name": "RTX 4090", "gpu_memory_bytes": 24 << 30, "driver_version": driver}
        make_run(folder, f"run-{index}.json", f"2026-12-0{index + 1}T10:00:00", scale, **gpu)
    assert main(["store", "add", *map(str, sorted(folder.glob("*.json"))), "--store", store]) == 0
    out = tmp_path / "history"
    assert main(["history", "--store", store, "--out", str(out)]) == 1  # a confirmed regression
    report = (out / "history.md").read_text()
    assert "regression +25.0%" in report and "at driver 550.54 -> 580.65" in report
    timelines = collect(result_files(open_store(store, create=False)))
    loop = next(t for t in timelines if t.key["stage"] == "denoise_loop")
    assert [s.verdict for s in loop.steps] == ["regression"] and loop.steps[0].cause == "driver 550.54 -> 580.65"


def test_one_run_out_of_line_is_suspicious_and_a_step_on_two_machines_is_the_events(tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    for machine in ("RTX 4090", "L4"):
        for index in range(8):
            scale = 1.3 if (machine == "RTX 4090" and index == 3) else 1.0  # one slow run
            driver = "550.54" if index < 5 else "580.65"
            scale *= 0.8 if (machine == "L4" and index >= 5) else 1.0
            scale *= 0.8 if (machine == "RTX 4090" and index >= 5) else 1.0
            gpu = {"gpu_name": machine, "gpu_memory_bytes": 24 << 30, "driver_version": driver}
            make_run(folder, f"{machine}-{index}.json", f"2026-12-0{index + 1}T10:00:00", scale, **gpu)
    timelines = collect([load(path) for path in sorted(folder.glob("*.json"))])
    rtx = next(t for t in timelines if t.key["gpu_name"] == "RTX 4090" and t.key["stage"] == "pipeline")
    verdicts = [s.verdict for s in rtx.steps]
    assert verdicts == ["suspicious", "suspicious", "improvement"]  # up and straight back down: one run
    assert not any(s.verdict == "regression" for t in timelines for s in t.steps)
    faster = [s for t in timelines for s in t.steps if s.verdict == "improvement" and t.key["stage"] == "vae_decode"]
    assert len(faster) == 2 and all(s.shared_with == 1 and s.cause == "driver 550.54 -> 580.65" for s in faster)


def test_compare_reads_stored_files_by_hash(store, tmp_path, capsys):
    other = ROOT / "results" / "examples" / "threads" / "2-one-thread.json"
    assert main(["store", "add", str(TEMPLATE), str(other), "--store", store]) == 0
    capsys.readouterr()
    engine = open_store(store)
    with engine.connect() as connection:
        hashes = connection.execute(select(files.c.content_hash).order_by(files.c.id)).scalars().all()
    TEMPLATE_COPY = tmp_path / "gone.json"  # stored files are found by hash even where the path is not a file
    assert main(["compare", hashes[0][:10], hashes[1][:10], "--store", store, "--json"]) in (0, 1)
    verdicts = json.loads(capsys.readouterr().out)
    assert len(verdicts) == 4 and not TEMPLATE_COPY.exists()


def test_a_corrupt_store_is_one_line_and_exit_2(tmp_path, capsys):
    corrupt = tmp_path / "store.sqlite"
    corrupt.write_bytes(b"this is not a database, it is a text file " * 100)
    assert main(["history", "--store", str(corrupt), "--out", str(tmp_path / "h")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be read" in err
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    assert main(["history", "--store", str(empty), "--out", str(tmp_path / "h")]) == 2
    assert "is empty" in capsys.readouterr().err


INGEST = """
import sys
from sdshape.store.db import open_store
from sdshape.store.ingest import add_file
engine = open_store(sys.argv[1])
for path in sys.argv[2:]:
    add_file(engine, path)
"""


def test_eight_processes_ingest_at_once_with_no_lost_row_and_no_lock_error(tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    made = [make_run(folder, f"run-{i}.json", f"2026-12-01T10:{i:02d}:00") for i in range(24)]
    store = str(tmp_path / "store.sqlite")
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", INGEST, store, *map(str, made[i::8]), str(TEMPLATE)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    errors = [worker.communicate(timeout=300)[1] for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), errors
    engine = open_store(store)
    assert (_count(engine, files), _count(engine, rows), _count(engine, rounds)) == (25, 100, 1000)


SLOW_INGEST = """
import sys, time
from sqlalchemy import event
from sdshape.store.db import open_store
from sdshape.store.ingest import add_file
engine = open_store(sys.argv[1])
@event.listens_for(engine, "before_cursor_execute")
def slow(*args):
    print("inside", flush=True)
    time.sleep(0.2)  # each statement of the file's transaction takes a while: time to be killed inside it
add_file(engine, sys.argv[2])
"""


def test_a_process_killed_mid_ingest_leaves_the_store_consistent(tmp_path):
    store = str(tmp_path / "store.sqlite")
    add_file(open_store(store), TEMPLATE)
    other = make_run(tmp_path, "other.json", "2026-12-02T10:00:00")
    worker = subprocess.Popen([sys.executable, "-c", SLOW_INGEST, store, str(other)], stdout=subprocess.PIPE, text=True)
    seen = 0
    while seen < 3:  # the file's row and its first rows are in, uncommitted
        assert worker.stdout.readline(), "the ingest ended before it could be killed"
        seen += 1
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    engine = open_store(store)
    assert (_count(engine, files), _count(engine, rows), _count(engine, rounds)) == (1, 4, 40)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
    assert add_file(engine, other).added  # and the file goes in whole on the next try
    time.sleep(0)


def test_run_with_store_ingests_the_file_it_wrote(tmp_path, capsys):
    store, out = tmp_path / "store.sqlite", tmp_path / "run.json"
    argv = ["run", "--shape", "tiny", "--device", "cpu", "--steps", "1", "--rounds", "2", "--warmup", "0"]
    assert main([*argv, "--no-parity", "--json", str(out), "--store", str(store)]) == 0
    assert "store: added 4 rows" in capsys.readouterr().out
    stored = result_files(open_store(store, create=False))
    assert len(stored) == 1 and stored[0].rows.keys() == load(out).rows.keys()
    assert main(["run", "--shape", "tiny", "--store", str(tmp_path / "no" / "such" / "dir.sqlite")]) == 2


def test_history_never_calls_a_step_at_a_method_change_a_regression(tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    for index in range(8):
        path = make_run(folder, f"run-{index}.json", f"2026-12-0{index + 1}T10:00:00", 1.0 if index < 4 else 1.3)
        document = json.loads(path.read_text())
        for bench in document["benchmarks"]:
            bench["extra_info"]["methods"] = {"time": 1 if index < 4 else 2, "memory": 2, "energy": 2}
        path.write_text(json.dumps(document))
    timelines = collect([load(path) for path in sorted(folder.glob("*.json"))])
    steps = [s for t in timelines for s in t.steps]
    assert steps and all(s.verdict == "method changed" and "time method 1 -> 2" in s.cause for s in steps)


def test_report_reads_the_store(store, tmp_path, capsys):
    assert main(["store", "add", str(ROOT / "results" / "cpu-amd-epyc" / "2026-11-22-sd15-eager-fp32.json"),
                 "--store", store]) == 0  # fmt: skip
    out = tmp_path / "report"
    assert main(["report", "--store", store, "--out", str(out)]) == 0
    assert "sd15" in (out / "report.md").read_text()
