"""Confirmation runs: the stopping rules under a scripted clock and runner, the recorded command, pooling;
and one real confirmation of an undecided compare verdict with the tiny shape on the CPU (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sdshape.cli.confirming import given_command
from sdshape.cli.recorded import recorded_command
from sdshape.core.errors import UsageError
from sdshape.regression.confirm import RUNS_SPENT, SETTLED, TIME_SPENT, Budget, confirm, pooled
from sdshape.result.io import ResultFile
from sdshape.result.model import ResultId, StageResult

ROOT = Path(__file__).resolve().parents[2]


class Scripted:
    """A runner whose every run takes ``seconds`` on a scripted clock, and a verdict open for ``open_for`` runs."""

    def __init__(self, open_for: int, seconds: float = 60.0) -> None:
        self.now, self.open_for, self.seconds, self.calls = 0.0, open_for, seconds, 0

    def clock(self) -> float:
        return self.now

    def rerun(self, index: int) -> int:
        self.calls += 1
        self.now += self.seconds
        return index

    def open_items(self, runs: list[int]) -> list[str]:
        return ["denoise_loop"] if len(runs) < self.open_for else []


@pytest.mark.parametrize(
    ("open_for", "budget", "runs", "stopped"),
    [
        (0, Budget(5), 0, SETTLED),  # settled already: no run
        (2, Budget(5), 2, SETTLED),
        (9, Budget(3), 3, RUNS_SPENT),
        (9, Budget(10, minutes=3.5), 3, TIME_SPENT),  # a 4th 60 s run would end at 4 min, past 3.5
        (9, Budget(10, minutes=4.0), 4, TIME_SPENT),
    ],
)
def test_confirmation_stops_when_settled_or_the_budget_is_spent(open_for, budget, runs, stopped):
    script = Scripted(open_for)
    said: list[str] = []
    outcome = confirm(script.open_items, script.rerun, budget, script.clock, said.append)
    assert (len(outcome.runs), outcome.stopped, script.calls) == (runs, stopped, runs)
    assert outcome.still_open == ([] if stopped == SETTLED else ["denoise_loop"])
    assert len(said) == runs and all("open: denoise_loop" in line for line in said)


def test_the_recorded_command_drops_the_outputs_a_rerun_must_not_reuse():
    given = ["run", "--shape", "tiny", "--json", "a.json", "--store", "--steps", "2", "--js=b", "--sto", "db"]
    assert recorded_command(given) == ["run", "--shape", "tiny", "--steps", "2"]
    assert recorded_command(["run", "--save", "--results-dir", "r", "--store"]) == [
        "run",
        "--save",
        "--results-dir",
        "r",
    ]
    assert given_command("sdshape run --shape tiny --json x.json") == ["run", "--shape", "tiny"]
    with pytest.raises(UsageError, match="must be an `sdshape run"):
        given_command("sdshape compare a b")


def _file(rounds: list[float]) -> ResultFile:
    row = StageResult(ResultId("denoise_loop", "tiny", "eager", "fp32", 1, 64, 2))
    row.timing.rounds_s = rounds
    return ResultFile(Path("x.json"), {}, {row.id.key: row}, None)


def test_pooling_joins_the_rounds_of_the_same_id_and_leaves_the_first_file_alone():
    first = _file([1.0, 2.0])
    joined = pooled(first, [_file([3.0]), _file([4.0, 5.0])])
    assert next(iter(joined.rows.values())).timing.rounds_s == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert next(iter(first.rows.values())).timing.rounds_s == [1.0, 2.0]


TINY = ["run", "--shape", "tiny", "--device", "cpu", "--steps", "2", "--rounds", "4", "--warmup", "1", "--no-parity"]


def _sdshape(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sdshape.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.slow
def test_compare_confirm_reruns_the_recorded_tiny_job_until_the_verdict_is_settled(tmp_path):
    """NEW keeps 2 of its 4 rounds and BASE is the same run at ten times the time: 4 vs 2 rounds cannot reach
    p < 0.05 (undecided); one confirmation run adds 4 rounds and settles it as an improvement (a factor of
    ten, so that a busy machine slowing the confirmation run cannot decide the verdict)."""
    done = _sdshape(*TINY, "--json", str(tmp_path / "run.json"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    document = json.loads((tmp_path / "run.json").read_text())
    assert {tuple(b["extra_info"]["command"]) for b in document["benchmarks"]} == {tuple(TINY)}
    for name, change in (("base", lambda rounds: [10 * r for r in rounds]), ("new", lambda rounds: rounds[:2])):
        for bench in document["benchmarks"]:
            bench["stats"]["data"] = change(bench["stats"]["data"])
        (tmp_path / f"{name}.json").write_text(json.dumps(document))
        document = json.loads((tmp_path / "run.json").read_text())
    store = str(tmp_path / "store.sqlite")
    plain = _sdshape("compare", "base.json", "new.json", "--json", cwd=tmp_path)
    assert {v["verdict"] for v in json.loads(plain.stdout)} == {"undecided"}
    refused = _sdshape("compare", "base.json", "new.json", "--confirm", cwd=tmp_path)
    assert refused.returncode == 2 and "give --store too" in refused.stderr
    confirmed = _sdshape(
        "compare", "base.json", "new.json", "--json", "--confirm", "--confirm-runs", "3", "--store", store, cwd=tmp_path
    )
    verdicts = json.loads(confirmed.stdout)
    assert {v["verdict"] for v in verdicts} == {"improvement"}, confirmed.stderr
    assert "confirmation run 1 of at most 3" in confirmed.stderr and "1 confirmation run(s)" in confirmed.stderr
    assert all(v["metrics"]["time"]["new_rounds"] == 6 for v in verdicts)
    listed = _sdshape("store", "list", "--store", store, "--json", cwd=tmp_path)
    assert len(json.loads(listed.stdout)) == 1  # the confirmation run is stored like any run
    assert len(list((tmp_path / "confirmations").glob("*.json"))) == 1
