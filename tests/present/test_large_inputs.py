"""Large inputs: a report of many runs reads each row a bounded number of times and draws a bounded number
of charts, and says how far it is on stderr only when the work is large and long; every exit of compare
says why, a reader that stops reading included; JSON too deep or with giant integers is one line. No
verdict here depends on the machine's speed: the real-time figure is bench/large_report.py's."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sdshape.cli import main
from sdshape.present.report import progress, runs
from sdshape.present.report.progress import LateProgress
from sdshape.result.model import ResultId

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results" / "cpu-amd-epyc" / "2026-11-22-sd15-eager-fp32.json"
RUNS = 150  # 600 rows: the old report read every row once per run (90,000 reads), this one reads each a few times
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def make_results(monkeypatch):
    """bench/large_report.py's builder: RUNS copies of the committed SD 1.5 run, each at its own step count."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    return importlib.import_module("large_report").make_results


@pytest.fixture
def big(tmp_path, make_results) -> tuple[Path, int]:
    path = tmp_path / "big.json"
    return path, make_results(path, RUNS)


def test_a_large_report_reads_each_row_a_bounded_number_of_times_and_draws_a_bounded_number_of_charts(
    big, tmp_path, monkeypatch
):
    path, rows = big
    reads = {"run_key": 0}
    original = ResultId.run_key

    def counted(self):
        reads["run_key"] += 1
        return original.fget(self)

    monkeypatch.setattr(ResultId, "run_key", property(counted))
    charts: list[str] = []
    monkeypatch.setattr(runs, "share_chart", lambda label, shares: charts.append(label) or PNG)
    from sdshape.present.report import write

    markdown, _ = write([str(path)], tmp_path / "report", None, None)
    assert rows == 4 * RUNS
    assert reads["run_key"] <= 3 * rows, reads  # linear in the rows, whatever the number of runs
    assert len(charts) == runs.MAX_SHARE_CHARTS
    text = markdown.read_text()
    assert text.count("![shares of") == runs.MAX_SHARE_CHARTS
    assert text.count("| stage | params share | time share | memory share | energy share |") == RUNS - len(charts)
    assert f"{RUNS} runs: the first {runs.MAX_SHARE_CHARTS} have their shares drawn" in text
    assert not (tmp_path / "report" / f"shares-{runs.MAX_SHARE_CHARTS + 1}.png").exists()


class Display:
    """A progress display that records what it was told."""

    def __init__(self):
        self.calls: list[tuple] = []

    def __enter__(self):
        self.calls.append(("enter",))
        return self

    def __exit__(self, *exc):
        self.calls.append(("exit",))

    def add_task(self, description, total=None):
        self.calls.append(("add", description, total))
        return description

    def update(self, task, advance=None, completed=None):
        self.calls.append(("update", task, advance, completed))


def test_progress_is_shown_only_for_large_work_that_runs_long_and_starts_where_the_work_is():
    now = [0.0]
    display = Display()
    with LateProgress(lambda: display, after_s=2.0, clock=lambda: now[0], many=100) as late:
        files = late.add_task("reading", total=1)
        late.update(files, advance=1)
        runs = late.add_task("runs", total=500)
        late.update(runs, advance=10)
        assert display.calls == []  # large, but not yet long
        now[0] = 3.0
        late.update(runs, advance=5)  # long now: shown, at 15 of 500; the finished reading left unsaid
        late.update(runs, advance=1)
        writing = late.add_task("writing", total=3)
    assert display.calls == [
        ("enter",), ("add", "runs", 500), ("update", "runs", None, 15), ("update", "runs", 1, None),
        ("add", "writing", 3), ("exit",),
    ]  # fmt: skip
    assert writing == 2

    small = Display()
    with LateProgress(lambda: small, after_s=2.0, clock=lambda: now[0] + 100, many=100) as late:
        task = late.add_task("runs", total=12)  # long but small: nothing, however slow the machine
        late.update(task, advance=12)
    assert small.calls == [] and not late.shown


def test_report_shows_progress_on_stderr_for_a_large_report_and_nothing_for_a_small_one(
    big, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(progress, "SHOW_AFTER_S", 0.0)  # "long" from the start: the test is about what is said
    monkeypatch.setattr(runs, "share_chart", lambda label, shares: PNG)
    path, _ = big
    assert main(["report", str(path), "--out", str(tmp_path / "large")]) == 0
    err = capsys.readouterr().err
    assert "report: runs" in err and "report: writing" in err
    assert main(["report", str(RESULTS), "--out", str(tmp_path / "small")]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.startswith("report written:")


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["table", "json"])
def test_compare_into_a_reader_that_stops_reading_says_so_and_exits_141(big, json_flag):
    """rich's own answer to a closed pipe was exit 1 with no word: the status of a regression."""
    path, _ = big
    command = [sys.executable, "-m", "sdshape.cli", "compare", *json_flag, str(RESULTS), str(path)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline()  # the first line, then the reader goes away (as `| head -1` does)
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait() == 141
    assert err.strip().splitlines() == ["sdshape: the output was closed before it was all written (its reader stopped)"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"benchmarks": ' + "[" * 100_000 + "]" * 100_000 + "}", "JSON nested deeper than Python's reader follows"),
        ('{"benchmarks": [{"extra_info": {"steps": ' + "9" * 5000 + "}}]}", "value has 5000 digits"),
    ],
    ids=["deep", "giant integer"],
)
@pytest.mark.parametrize("command", ["compare", "report"])
def test_json_too_deep_or_with_giant_integers_is_one_line(tmp_path, capsys, text, expected, command):
    path = tmp_path / "huge.json"
    path.write_text(text)
    args = [str(RESULTS), str(path)] if command == "compare" else [str(path), "--out", str(tmp_path / "r")]
    assert main([command, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"sdshape: error: {path}: not a results file") and expected in err[0]


def test_the_bench_builder_makes_distinct_runs(big):
    path, rows = big
    document = json.loads(path.read_text())
    ids = {tuple(sorted(b["extra_info"]["id"].items())) for b in document["benchmarks"]}
    assert len(ids) == rows == 4 * RUNS
