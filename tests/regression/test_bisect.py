"""sdshape bisect: the search over a scripted tester, the release list and its one-line errors, and (slow)
a real bisection over real tqdm releases with the tiny shape, where a slowdown planted from one release
on must be found exactly."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest

from sdshape.core.errors import UsageError
from sdshape.fleet import releases
from sdshape.fleet.environments import frozen
from sdshape.regression.bisect import BAD, GOOD, UNBUILDABLE, UNDECIDED, search

RELEASES = [f"1.{i}.0" for i in range(9)]


def scripted(first_bad: int, odd: dict[int, str] | None = None):
    tested: list[str] = []

    def test(version: str) -> str:
        tested.append(version)
        index = RELEASES.index(version)
        return (odd or {}).get(index) or (BAD if index >= first_bad else GOOD)

    return test, tested


@pytest.mark.parametrize("first_bad", range(1, len(RELEASES)))
def test_the_search_finds_the_first_bad_release_in_log2_steps(first_bad):
    test, tested = scripted(first_bad)
    found = search(RELEASES, test)
    assert found.first_bad == RELEASES[first_bad] and found.range == [RELEASES[first_bad]]
    assert tested[0] == RELEASES[-1] and len(tested) <= 1 + 3  # the bad end, then ceil(log2(7)) = 3


def test_a_bad_end_that_is_not_bad_ends_the_search():
    test, tested = scripted(99)
    found = search(RELEASES, test)
    assert found.first_bad is None and tested == [RELEASES[-1]] and "nothing to bisect" in found.note


def test_undecided_and_unbuildable_releases_are_stepped_around():
    test, tested = scripted(5, {4: UNDECIDED, 3: UNBUILDABLE})
    found = search(RELEASES, test)  # 4 undecided, then 3 (nearest the middle) unbuildable, 5 bad, 2 good
    assert tested == ["1.8.0", "1.4.0", "1.3.0", "1.5.0", "1.2.0"]
    assert found.first_bad is None and found.range == ["1.3.0", "1.4.0", "1.5.0"]
    test, _ = scripted(6, {4: UNDECIDED})
    assert search(RELEASES, test).first_bad == "1.6.0"  # stepped around 4: 5 good, 6 bad
    test, _ = scripted(4, {3: UNDECIDED})
    found = search(RELEASES, test)
    assert found.first_bad is None and found.range == ["1.3.0", "1.4.0"] and "1.3.0 undecided" in found.note


def _document(versions: dict[str, list[dict]]) -> dict:
    return {"releases": versions}


def test_releases_are_ordered_as_versions_without_yanked_or_pre_releases():
    document = _document({
        "4.10.0": [{}], "4.9.0": [{}], "4.9.1": [{"yanked": True}], "5.0.0rc1": [{}], "4.8.0": [], "bogus": [{}],
    })  # fmt: skip
    assert releases.published(document) == ["4.9.0", "4.10.0"]
    assert releases.published(document, pre=True) == ["4.9.0", "4.10.0", "5.0.0rc1"]


@pytest.mark.parametrize(
    ("good", "bad", "message"),
    [
        ("1.2.0", "1.2.0", "--good 1.2.0 and --bad 1.2.0 are the same release"),
        ("1.4.0", "1.2.0", "--bad 1.2.0 comes before --good 1.4.0"),
        ("1.2.0", "1.9.9", "--bad 1.9.9: pkg has no such release on the index (latest: "),
        ("0.0.1", "1.2.0", "--good 0.0.1: pkg has no such release"),
        ("1.2.0", "2.0rc1", "--bad 2.0rc1 is a pre-release: add --pre"),
        ("one", "1.2.0", "give release numbers"),
    ],
)
def test_wrong_versions_are_one_line(good, bad, message):
    with pytest.raises(UsageError) as refused:
        releases.between("pkg", good, bad, RELEASES)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert releases.between("pkg", "1.2.0", "1.4.0", RELEASES) == ["1.2.0", "1.3.0", "1.4.0"]


def test_an_unknown_package_is_one_line(monkeypatch):
    def not_found(url, timeout):
        raise urllib.error.HTTPError(url, 404, "Not Found", {}, io.BytesIO())  # type: ignore[arg-type]

    monkeypatch.setattr(releases.urllib.request, "urlopen", not_found)
    with pytest.raises(UsageError, match=r"--package nosuch: no such package on https://pypi\.org/pypi"):
        releases.index_document("nosuch")


def test_the_frozen_environment_swaps_one_pin_and_leaves_sdshape_out():
    pins = frozen("tqdm", "4.68.0")
    assert "tqdm==4.68.0" in pins and not any(p.lower().startswith("sdshape==") for p in pins)
    assert any(p.startswith("torch==") for p in pins)  # torch at this environment's build (the CPU wheel here)


# The planted slowdown is virtual: the clock sdshape's timer reads (time.perf_counter_ns) advances 1 s per
# convolution or linear layer called, and 3 s from the planted release on, without sleeping. Every stage's
# rounds are then almost all virtual time, so a busy machine (CI shares its cores) moves good and bad runs
# alike by a few percent, while the planted release is 3 times slower; and the test costs no waiting.
PLANT = """
import importlib.metadata, os, time
package, _, version = os.environ["SDSHAPE_TEST_SLOW_FROM"].partition("==")
from packaging.version import Version
step_ns = (3 if Version(importlib.metadata.version(package)) >= Version(version) else 1) * 10**9
offset = [0]
real_ns, real_s = time.perf_counter_ns, time.perf_counter
time.perf_counter_ns = lambda: real_ns() + offset[0]
time.perf_counter = lambda: real_s() + offset[0] / 1e9
import torch
for layer in (torch.nn.Conv2d, torch.nn.Linear):
    def slowed(self, *args, _forward=layer.forward, **kwargs):
        offset[0] += step_ns
        return _forward(self, *args, **kwargs)
    layer.forward = slowed
"""


@pytest.mark.slow
def test_bisect_finds_the_release_a_planted_slowdown_starts_at(tmp_path):
    """Seven real tqdm releases (4.68.0 to 4.69.1), one isolated environment each; a sitecustomize on
    PYTHONPATH makes the timer's clock advance 1 s per convolution or linear layer, 3 s where tqdm >= 4.68.3."""
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(PLANT)
    environment = {**os.environ, "PYTHONPATH": str(tmp_path / "hook"), "SDSHAPE_TEST_SLOW_FROM": "tqdm==4.68.3"}
    job = "sdshape run --shape tiny --device cpu --steps 2 --rounds 5 --warmup 1 --no-parity"
    argv = [
        sys.executable, "-m", "sdshape.cli", "bisect", "--package", "tqdm", "--good", "4.68.0", "--bad", "4.69.1",
        "--command", job, "--store", str(tmp_path / "store.sqlite"), "--out", str(tmp_path / "bisect"),
        "--threshold", "0.5", "--confirm-runs", "2",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env=environment, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "bisect" / "bisect.json").read_text())
    assert report["first_bad"] == "4.68.3", report
    assert report["tested"]["4.68.2"]["verdict"] == "good" and report["tested"]["4.68.3"]["verdict"] == "bad"
    stored = subprocess.run([sys.executable, "-m", "sdshape.cli", "store", "list", "--json", "--store",
                             str(tmp_path / "store.sqlite")], capture_output=True, text=True)  # fmt: skip
    runs = sum(len(entry["runs"]) for entry in report["tested"].values())
    assert len(json.loads(stored.stdout)) == runs  # every run stored
    assert "first bad release: tqdm 4.68.3" in done.stdout and "4.68.3: building its environment" in done.stderr
    assert Path(report["tested"]["4.68.3"]["runs"][0]).is_file()
