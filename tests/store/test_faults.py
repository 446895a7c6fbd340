"""The results store under faults, class by class: the default store, figures no results file may hold,
and a store that is read-only, full, damaged, mistyped or named by a path the file system refuses.

Each fault ends in one line and exit 2 (exit 1 where the results are kept in a file), never a traceback,
and leaves the store as it was, with no stray file beside it. Read-only stores are simulated by patching
``os.access`` and by SQLite's own ``PRAGMA query_only`` (root writes through chmod), a full disk by
SQLite's ``PRAGMA max_page_count`` (the error is SQLite's own SQLITE_FULL), so every test runs anywhere.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.pool import Pool

from sdshape.cli import main
from sdshape.regression.compare import compare_time
from sdshape.regression.history import collect
from sdshape.regression.points import Observation, Point
from sdshape.result.output import standard_json

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "results" / "examples" / "threads" / "1-two-threads.json"
OTHER = ROOT / "results" / "examples" / "threads" / "2-one-thread.json"


def one_line(argv: list[str], capsys, *expected: str, code: int = 2) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err


def content(store: Path) -> str:
    """The store's committed content, as SQL (a fresh connection: what another process would see)."""
    connection = sqlite3.connect(store)
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


def names(folder: Path) -> list[str]:
    """The files in ``folder``, less SQLite's journal beside an open store (-wal, -shm)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-wal", "-shm")))


def made_store(folder: Path, *results: Path) -> Path:
    store = folder / "store.sqlite"
    assert main(["store", "add", *map(str, results), "--store", str(store)]) == 0
    return store


@contextmanager
def every_connection(sql: str) -> Iterator[None]:
    """Each SQLite connection opened inside runs ``sql`` first (a full disk, a read-only database)."""

    def setup(dbapi_connection, _):
        dbapi_connection.execute(sql)

    event.listen(Pool, "connect", setup)
    try:
        yield
    finally:
        event.remove(Pool, "connect", setup)


def altered(folder: Path, name: str, change) -> Path:
    document = json.loads(TEMPLATE.read_text())
    change(document["benchmarks"][1])  # the denoising loop's row (named unet_loop in this older file)
    path = folder / name
    path.write_text(json.dumps(document))  # json.dumps writes NaN bare, as a careless tool would
    return path


# -- 1. the default store ---------------------------------------------------------------------------


def test_the_default_store_is_made_when_writing_and_never_when_reading(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("SDSHAPE_STORE", raising=False)
    default = home / ".local" / "share" / "sdshape" / "store.sqlite"
    for argv in (
        ["store", "list"],
        ["history", "--store", "--out", str(tmp_path / "h")],
        ["compare", "8845f038", "1121ec77", "--store"],
        ["report", "--store", "--out", str(tmp_path / "r")],
    ):
        one_line(argv, capsys, f"no store yet at {default}", "sdshape store add")
    assert not home.exists()  # reading made nothing, not even the folder
    assert main(["store", "add", str(TEMPLATE)]) == 0
    assert "added 4 rows" in capsys.readouterr().out and default.is_file()
    assert main(["store", "list", "--json"]) == 0
    assert [entry["rows"] for entry in json.loads(capsys.readouterr().out)] == [4]


# -- 2. figures no results file may hold ------------------------------------------------------------


def _round(value):
    return lambda bench: bench["stats"]["data"].__setitem__(0, value)


def _memory(key, value):
    return lambda bench: bench["extra_info"]["memory"].__setitem__(key, value)


def _info(key, value):
    return lambda bench: bench["extra_info"].__setitem__(key, value)


ABSURD = {
    "round-1e308": (_round(1e308), "stats.data[0] = 1e+308 s is longer than a day"),
    "round-a-day-and-a-second": (_round(86_401.0), "stats.data[0] = 86401.0 s is longer than a day"),
    "round-400-digits": (_round(10**400), "is longer than a day"),
    "round-a-picosecond": (_round(1e-12), "stats.data[0] = 1e-12 s is shorter than a nanosecond"),
    "median-1e308": (lambda b: b["stats"].__setitem__("median", 1e308), "stats.median = 1e+308 is not a time"),
    "iqr-negative": (lambda b: b["stats"].__setitem__("iqr", -1.0), "stats.iqr = -1.0 is not a time"),
    "memory-2-EiB": (_memory("host_rss_peak_bytes", 2**61), "memory.host_rss_peak_bytes = 2305843009213693952"),
    "memory-nan": (_memory("host_rss_peak_bytes", math.nan), "memory.host_rss_peak_bytes = nan is not a finite"),
    "memory-string": (_memory("host_rss_rise_bytes", "lots"), "memory.host_rss_rise_bytes = 'lots' is not a"),
    "weights-negative": (_memory("weights_bytes", -5), "memory.weights_bytes = -5: a byte count cannot be negative"),
    "memory-not-an-object": (_info("memory", [1, 2]), "memory is not an object of byte counts"),
    "energy-1e308": (_info("energy_j", 1e308), "energy_j = 1e+308 is beyond"),
    "power-1-MW": (_info("power_w_mean", 1e6), "power_w_mean = 1000000.0 is not a power"),
    "device-round-1e308": (_info("device_rounds_s", [1e308]), "device_rounds_s[0] = 1e+308 s is longer than a day"),
    "batch-400-digits": (_info("batch", 10**40), "id field batch = 10000000000000000000000000000000000000000"),
}


@pytest.mark.parametrize("change,expected", ABSURD.values(), ids=ABSURD.keys())
def test_a_figure_no_results_file_may_hold_is_refused_as_it_is_read(change, expected, tmp_path, capsys):
    bad = altered(tmp_path, "bad.json", change)
    err = one_line(["compare", str(TEMPLATE), str(bad)], capsys, str(bad), "unet_loop", expected)
    assert err.count("bad.json") == 1
    store = made_store(tmp_path, OTHER)
    before = content(store)
    one_line(["store", "add", str(bad), "--store", str(store)], capsys, expected)
    assert content(store) == before  # nothing of it stored
    folder = tmp_path / "runs"
    folder.mkdir()
    bad.rename(folder / "bad.json")
    (folder / "good.json").write_bytes(OTHER.read_bytes())
    assert main(["history", str(folder), "--out", str(tmp_path / "h")]) == 0  # the other file is read
    skipped = [line for line in capsys.readouterr().err.splitlines() if "bad.json" in line]
    assert len(skipped) == 1 and skipped[0].startswith("sdshape: skipped:") and expected in skipped[0]


def test_a_negative_memory_peak_is_flagged_and_compare_says_memory_was_not_compared(tmp_path, capsys):
    flagged = altered(tmp_path, "negative.json", _memory("host_rss_peak_bytes", -5))
    assert main(["compare", str(TEMPLATE), str(flagged)]) in (0, 1)
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("memory not compared")]
    assert said == [
        "memory not compared for 1 of 4 ids: a figure broke a rule and no other stands in (new: "
        "host_rss_peak_bytes read -5 B: a memory figure cannot be negative)"
    ]


def _poison(store: Path, content_hash: str) -> None:
    """Rounds and medians of 1e308 s into one stored file, as a store that took it in before the checks."""
    connection = sqlite3.connect(store)
    with connection:
        (file_id,) = connection.execute("SELECT id FROM files WHERE content_hash = ?", (content_hash,)).fetchone()
        rows = "SELECT id FROM rows WHERE file_id = ?"
        connection.execute(f"UPDATE rounds SET seconds = 1e308 WHERE row_id IN ({rows})", (file_id,))
        connection.execute("UPDATE rows SET median_s = 1e308, stats = json_set(stats, '$.median', 1e308) "
                           "WHERE file_id = ?", (file_id,))  # fmt: skip
    connection.close()


def _hashes(store: Path) -> list[str]:
    connection = sqlite3.connect(store)
    try:
        return [row[0] for row in connection.execute("SELECT content_hash FROM files ORDER BY id")]
    finally:
        connection.close()


def strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"{constant} in JSON output")

    return json.loads(text, parse_constant=refuse)


def test_a_poisoned_store_is_read_around_and_store_remove_takes_the_file_out(tmp_path, capsys):
    third = tmp_path / "third.json"
    document = json.loads(TEMPLATE.read_text())
    document["datetime"] = "2026-11-23T10:00:00"
    third.write_text(json.dumps(document))
    store = made_store(tmp_path, TEMPLATE, OTHER, third)
    capsys.readouterr()
    good, other, poisoned = _hashes(store)
    _poison(store, poisoned)
    assert main(["history", "--store", str(store), "--out", str(tmp_path / "h")]) in (0, 1)
    err = capsys.readouterr().err
    assert f"stored file {poisoned[:12]}" in err and f"sdshape store remove {poisoned[:12]}" in err
    assert main(["compare", good[:8], other[:8], "--store", str(store), "--json"]) in (0, 1)
    assert len(strict_json(capsys.readouterr().out)) == 4  # between two other files: as if it were not there
    one_line(["compare", good[:8], poisoned[:8], "--store", str(store)], capsys, poisoned[:12], "1e+308")
    assert main(["report", "--store", str(store), "--out", str(tmp_path / "r")]) == 0
    assert f"left out of the report: stored file {poisoned[:12]}" in capsys.readouterr().err

    # store remove: a prefix that names two files, or none, removes nothing
    connection = sqlite3.connect(store)
    with connection:
        connection.execute(
            "INSERT INTO files (content_hash, path, machine_info, ingested_at) VALUES (?, 'twin', '{}', 0)",
            (good[:6] + "0" * 58,),
        )
    connection.close()
    before = content(store)
    one_line(["store", "remove", good[:6], "--store", str(store)], capsys, "names 2 stored files")
    one_line(["store", "remove", "abcdef0123", "--store", str(store)], capsys, "no such file in the store")
    one_line(["store", "remove", "8845", "--store", str(store)], capsys, "6 or more hex digits")
    assert content(store) == before
    assert main(["store", "remove", poisoned[:10], "--store", str(store)]) == 0
    assert capsys.readouterr().out.strip() == f"removed {poisoned[:12]} ({third}): 4 rows, 40 rounds"
    connection = sqlite3.connect(store)
    counts = [connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in ("rows", "rounds")]
    connection.close()
    assert counts == [8, 80] and poisoned not in _hashes(store)
    assert main(["history", "--store", str(store), "--out", str(tmp_path / "h")]) in (0, 1)
    assert "skipped" not in capsys.readouterr().err


def test_no_stored_value_overflows_what_is_computed_from_it():
    def observation(median: float, when: str) -> Observation:
        point = Point(when, None, median, median / 10, 10, Path("x.json"), {}, {"time": 1})
        return Observation({"stage": "pipeline", "gpu_name": "G"}, point, "G")

    for medians in ([1e308] * 8, [1e-300] * 4 + [1e308] * 4, [1.0, 1e308, 1e-300, 2.0, 1e308, 1.0]):
        timelines = collect([observation(m, f"2026-12-{i + 1:02d}") for i, m in enumerate(medians)])
        assert all(math.isfinite(s.change) and math.isfinite(s.z) for t in timelines for s in t.steps)
        assert all(math.isfinite(t.run_to_run) for t in timelines)
    verdict = compare_time([1e308] * 6, [1e308] * 6, 0.05, 0.05)
    assert verdict.new == 1e308 and verdict.change == 0.0  # the median of two 1e308s is not infinite
    verdict = compare_time([1e-300] * 6, [1e308] * 6, 0.05, 0.05, run_to_run=1e-300)
    assert strict_json(standard_json([verdict.to_json()]))[0]["change"] is None  # infinite: null, not Infinity


# -- 3. the store under faults ----------------------------------------------------------------------


def _deny_writes(monkeypatch, *paths: Path) -> None:
    """``os.access`` says the paths are not writable (as chmod would, for anyone but root)."""
    real = os.access
    denied = {str(path) for path in paths}

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and str(path) in denied:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_store_is_refused_before_any_work(what, tmp_path, monkeypatch, capsys):
    store = made_store(tmp_path, TEMPLATE)
    before, listed = content(store), names(tmp_path)
    _deny_writes(monkeypatch, store if what == "file" else tmp_path)
    expected = "the store is read-only" if what == "file" else "cannot write in its folder"
    one_line(["store", "add", str(OTHER), "--store", str(store)], capsys, str(store), expected)
    one_line(["store", "remove", "8845f038", "--store", str(store)], capsys, expected)
    assert main(["store", "list", "--store", str(store)]) == 0  # reading needs no write
    if what == "file" and os.geteuid() != 0:  # as chmod leaves it, where it binds (not for root)
        monkeypatch.undo()
        store.chmod(0o444)
        one_line(["store", "add", str(OTHER), "--store", str(store)], capsys, "the store is read-only")
        store.chmod(0o644)
    assert content(store) == before and names(tmp_path) == listed


def test_a_store_the_database_refuses_to_write_is_one_line_and_unchanged(tmp_path, capsys):
    store = made_store(tmp_path, TEMPLATE)
    before, listed = content(store), names(tmp_path)
    with every_connection("PRAGMA query_only = ON"):  # SQLite's SQLITE_READONLY, as a read-only mount gives
        one_line(["store", "add", str(OTHER), "--store", str(store)], capsys, "readonly", "nothing of it was stored")
        one_line(["store", "remove", "8845f038", "--store", str(store)], capsys, "readonly", "nothing was removed")
    assert content(store) == before and names(tmp_path) == listed


def test_a_full_disk_during_store_add_leaves_the_store_as_it_was(tmp_path, capsys):
    store = made_store(tmp_path, TEMPLATE)
    before, listed = content(store), names(tmp_path)
    with every_connection("PRAGMA max_page_count = 1"):  # no page more than the store has: SQLITE_FULL
        err = one_line(["store", "add", str(OTHER), "--store", str(store)], capsys, "database or disk is full")
        assert f"could not add {OTHER}" in err and "nothing of it was stored" in err
        fresh = tmp_path / "fresh.sqlite"  # a new store the disk has no room for: not left half-made
        one_line(["store", "add", str(OTHER), "--store", str(fresh)], capsys, "database or disk is full")
    assert content(store) == before and names(tmp_path) == listed
    assert main(["store", "add", str(OTHER), "--store", str(store)]) == 0  # and in whole once there is room


RUN = ["run", "--shape", "tiny", "--device", "cpu", "--steps", "1", "--rounds", "1", "--warmup", "0", "--no-parity"]


def test_run_with_a_read_only_store_is_refused_before_the_run(tmp_path, monkeypatch, capsys):
    from sdshape.run.campaign import Campaign

    store = made_store(tmp_path, OTHER)
    before, out = content(store), tmp_path / "out.json"

    def not_measured(self, on_session=None):
        raise AssertionError("the run started before the store was checked")

    monkeypatch.setattr(Campaign, "run", not_measured)
    _deny_writes(monkeypatch, store)
    one_line([*RUN, "--json", str(out), "--store", str(store)], capsys, "the store is read-only")
    assert not out.exists() and content(store) == before


@pytest.mark.slow  # the run builds its plan: diffusers and transformers imported, 20-30 s on 2 cores
def test_run_with_store_keeps_the_results_when_the_store_fails_at_the_end(tmp_path, monkeypatch, capsys):
    from sdshape.result.io import load
    from sdshape.run.campaign import Campaign

    store = made_store(tmp_path, OTHER)
    before, out = content(store), tmp_path / "out.json"
    measured = load(TEMPLATE)

    def replayed(self, on_session=None):  # the committed tiny run's rows, as if just measured
        on_session(list(measured.rows.values()), dict(measured.machine_info))

    monkeypatch.setattr(Campaign, "run", replayed)
    with every_connection("PRAGMA max_page_count = 1"):
        assert main([*RUN, "--json", str(out), "--store", str(store)]) == 1  # the results are kept: in the file
    err = [line for line in capsys.readouterr().err.splitlines() if "database or disk is full" in line]
    assert len(err) == 1 and err[0].endswith(f"the results are in {out}")
    assert len(load(out).rows) == 4 and content(store) == before


def test_a_schema_version_that_is_not_a_number_is_one_line(tmp_path, capsys):
    store = made_store(tmp_path, TEMPLATE)
    connection = sqlite3.connect(store)
    with connection:
        connection.execute("UPDATE sdshape_store SET value = 'one' WHERE key = 'schema_version'")
    connection.close()
    before = content(store)
    expected = "schema version 'one' is not a number: damaged, or not an sdshape store"
    for argv in (
        ["store", "list", "--store", str(store)],
        ["store", "add", str(OTHER), "--store", str(store)],
        ["history", "--store", str(store), "--out", str(tmp_path / "h")],
    ):
        one_line(argv, capsys, str(store), expected)
    assert content(store) == before


def test_paths_that_are_not_utf8_work_and_print(tmp_path):
    folder = os.fsencode(tmp_path)
    store, results = folder + b"/\xff.sqlite", folder + b"/run-\xfe.json"
    Path(os.fsdecode(results)).write_bytes(TEMPLATE.read_bytes())
    command = [sys.executable, "-m", "sdshape.cli", "store"]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}  # strict: a lone surrogate printed would fail
    done = subprocess.run([*command, b"add", results, b"--store", store], capture_output=True, env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode() == f"{tmp_path}/run-\\xfe.json: added 4 rows, 40 rounds\n"
    done = subprocess.run([*command, b"list", b"--store", store, b"--json"], capture_output=True, env=env)
    assert done.returncode == 0 and json.loads(done.stdout)[0]["path"] == f"{tmp_path}/run-\\xfe.json"
    missing = folder + b"/\xfe/store.sqlite"
    done = subprocess.run([*command, b"add", results, b"--store", missing], capture_output=True, env=env)
    assert done.returncode == 2 and done.stderr.decode().count("\n") == 1
    assert f"folder {tmp_path}/\\xfe does not exist" in done.stderr.decode()


def test_a_store_path_longer_than_the_file_system_allows_is_one_line(tmp_path, capsys):
    for path in (tmp_path / ("s" * 300 + ".sqlite"), tmp_path / ("d/" * 2100 + "store.sqlite")):
        one_line(["store", "add", str(TEMPLATE), "--store", str(path)], capsys, "File name too long")
        one_line(["store", "list", "--store", str(path)], capsys, "File name too long")
    assert names(tmp_path) == []


def test_reading_commands_never_make_a_store(tmp_path, capsys):
    typo = tmp_path / "stroe.sqlite"
    for argv in (
        ["store", "list", "--store", str(typo)],
        ["history", "--store", str(typo), "--out", str(tmp_path / "h")],
        ["compare", "8845f038", "1121ec77", "--store", str(typo)],
        ["report", "--store", str(typo), "--out", str(tmp_path / "r")],
    ):
        one_line(argv, capsys, str(typo), "no such store")
    assert names(tmp_path) == [] and not any(tmp_path.glob("stroe*"))
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    one_line(["store", "list", "--store", str(empty)], capsys, "is empty")
    assert empty.stat().st_size == 0  # not even a header written


def test_store_add_refuses_a_damaged_store_as_reading_does(tmp_path, capsys):
    store = made_store(tmp_path, TEMPLATE)
    damages = {
        "DROP TABLE rounds": "lacks tables rounds: damaged, or not an sdshape store",
        "ALTER TABLE rows DROP COLUMN iqr_s": "table rows lacks columns iqr_s: damaged, or not an sdshape store",
        "DELETE FROM sdshape_store": "records no schema version: damaged, or not an sdshape store",
    }
    for index, (damage, expected) in enumerate(damages.items()):
        damaged = tmp_path / f"damaged-{index}.sqlite"
        source, connection = sqlite3.connect(store), sqlite3.connect(damaged)
        source.backup(connection)
        with connection:
            connection.execute(damage)
        source.close()
        connection.close()
        before = content(damaged)
        for argv in (
            ["store", "add", str(OTHER), "--store", str(damaged)],
            ["history", "--store", str(damaged), "--out", str(tmp_path / "h")],
        ):
            one_line(argv, capsys, f"store {damaged}: {expected}")
        assert content(damaged) == before  # never rebuilt
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database, a text file " * 200)
    for argv in (["store", "add", str(OTHER), "--store", str(garbage)], ["store", "list", "--store", str(garbage)]):
        one_line(argv, capsys, "file is not a database", "not an sdshape store, or damaged")
    assert garbage.read_bytes() == b"not a database, a text file " * 200
