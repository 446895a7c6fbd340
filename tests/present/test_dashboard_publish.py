"""sdshape publish: the site's content from a planted store, its atomic replacement, the folders it
refuses, bad stores, the vendored chart library's integrity, and records history grows."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from sdshape.cli import main
from sdshape.core.errors import WriteError
from sdshape.present.dashboard import pages
from sdshape.present.dashboard.site import MARKER
from sdshape.present.dashboard.timeline_data import timeline_document
from sdshape.regression.history import Step, Timeline
from sdshape.regression.points import Point
from tests.cli.test_bad_input import one_line_exit_2
from tests.dashboard_store import build_store

VENDOR = Path(__file__).resolve().parents[2] / "sdshape" / "data" / "vendor" / "uplot"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return build_store(tmp_path_factory.mktemp("dashboard"))


def _publish(store: Path, out: Path, *extra: str) -> int:
    return main(["publish", "--store", str(store), "--out", str(out), *extra])


def test_the_site_has_an_index_a_page_per_timeline_and_its_assets(store, tmp_path, capsys):
    site = tmp_path / "site"
    assert _publish(store, site) == 0  # a regression is shown, not an exit status: history gates CI
    assert "site written" in capsys.readouterr().out
    index = (site / "index.html").read_text()
    timelines = json.loads((site / "data" / "timelines.json").read_text())["timelines"]
    assert len(timelines) == 10  # the L4's two stages, and the threads example's four stages at 1 and 2 threads
    assert sorted(p.stem for p in (site / "series").glob("*.html")) == sorted(t["id"] for t in timelines)
    for name in ("uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE", "dashboard.js", "dashboard.css"):
        assert (site / "assets" / name).stat().st_size > 0
    for choice in ("<option>NVIDIA L4</option>", "<option>AMD EPYC</option>", "<option>555.42.02</option>"):
        assert choice in index
    assert "data-driver='550.54.15|555.42.02'" in index
    assert json.loads((site / MARKER).read_text())["generator"] == "sdshape publish"
    assert oct((site / "index.html").stat().st_mode & 0o004)  # a web server as another user reads it


def test_the_planted_step_is_listed_with_its_cause_and_figures(store, tmp_path):
    site = tmp_path / "site"
    assert _publish(store, site) == 0
    timelines = json.loads((site / "data" / "timelines.json").read_text())["timelines"]
    loop = next(t for t in timelines if t["gpu"] == "NVIDIA L4" and t["stage"] == "denoise_loop")
    [step] = loop["steps"]
    assert step["verdict"] == "regression" and step["after"] == 3 and 0.17 < step["change"] < 0.23
    assert step["cause"] == "driver 550.54.15 -> 555.42.02"
    assert 0.099 < step["level_before"] < 0.101 and 0.119 < step["level_after"] < 0.121
    assert [e["kind"] for e in loop["events"]] == ["version"]
    page = (site / "series" / f"{loop['id']}.html").read_text()
    assert "regression</span>" in page and "event: driver 550.54.15 -&gt; 555.42.02" in page
    assert "99.9 ms → 120.1 ms" in page and "persisted over 4 runs" in page
    vae = next(t for t in timelines if t["gpu"] == "NVIDIA L4" and t["stage"] == "vae_decode")
    assert vae["steps"] == [] and len(vae["points"]) == 8


def test_a_site_replaces_its_own_earlier_site_whole(store, tmp_path):
    site = tmp_path / "site"
    assert _publish(store, site) == 0
    (site / "series" / "stale.html").write_text("from an earlier store")
    assert _publish(store, site, "--gpu", "L4") == 0
    assert not (site / "series" / "stale.html").exists()
    assert len(list((site / "series").glob("*.html"))) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["site"]  # no staging or old folder left beside it


def test_a_failure_leaves_the_old_site_as_it_was(store, tmp_path, monkeypatch, capsys):
    site = tmp_path / "site"
    assert _publish(store, site) == 0
    before = sorted(str(p.relative_to(site)) for p in site.rglob("*"))
    calls = []

    def failing(document, about):
        calls.append(document["id"])
        if len(calls) == 3:
            raise WriteError("could not write series/x.html (OSError: [Errno 28] No space left on device)")
        return "<html></html>"

    monkeypatch.setattr("sdshape.present.dashboard.site.series_page", failing)
    assert _publish(store, site) == 1
    assert "No space left" in capsys.readouterr().err
    assert sorted(str(p.relative_to(site)) for p in site.rglob("*")) == before
    assert "<html></html>" not in (site / "index.html").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["site"]


def test_a_folder_it_did_not_write_is_refused(store, tmp_path, capsys):
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "plan.txt").write_text("keep me")
    one_line_exit_2(
        ["publish", "--store", str(store), "--out", str(mine)], capsys, f"--out {mine}", "did not write", MARKER
    )
    assert [p.name for p in mine.iterdir()] == ["plan.txt"]
    a_file = tmp_path / "site.html"
    a_file.write_text("")
    one_line_exit_2(["publish", "--store", str(store), "--out", str(a_file)], capsys, "is a file, not a folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _publish(store, empty) == 0 and (empty / "index.html").exists()


def test_bad_stores_are_one_line(tmp_path, capsys):
    missing = tmp_path / "none.sqlite"
    one_line_exit_2(["publish", "--store", str(missing), "--out", str(tmp_path / "s")], capsys, "no such store")
    assert not missing.exists()
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database " * 100)
    one_line_exit_2(["publish", "--store", str(junk), "--out", str(tmp_path / "s")], capsys, "not an sdshape store")
    one_line_exit_2(["publish", "--store", "mysql://h/db", "--out", str(tmp_path / "s")], capsys, "not a store")
    main(["store", "list", "--store", str(tmp_path / "empty.sqlite")])  # never makes one
    from sdshape.store.db import open_store

    open_store(tmp_path / "empty.sqlite", create=True).dispose()
    capsys.readouterr()
    one_line_exit_2(
        ["publish", "--store", str(tmp_path / "empty.sqlite"), "--out", str(tmp_path / "s")], capsys, "no completed"
    )
    assert not (tmp_path / "s").exists()


def test_embedded_data_cannot_end_its_script_element():
    text = pages.embedded_json({"name": "</script><script>alert(1)</script><!--", "x": float("nan")})
    assert "<" not in text and ">" not in text
    assert json.loads(text)["name"].startswith("</script>") and json.loads(text)["x"] is None


def test_the_vendored_chart_library_is_the_npm_release():
    source = json.loads((VENDOR / "SOURCE.json").read_text())
    assert source["package"] == "uplot" and source["license"] == "MIT"
    for name, entry in source["files"].items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == entry["sha256"], name
    assert f"(v{source['version']})" in (VENDOR / "uPlot.iife.min.js").read_text()[:200]


@dataclass
class LaterStep(Step):
    """A step as a later history may make it: a field the dashboard does not know by name."""

    confidence: str = "high"


@dataclass
class Attribution:
    verdict: str
    text: str


def test_fields_history_adds_later_are_carried():
    points = [Point(f"2026-10-0{i + 1}", None, level, 0.001, 10, Path(f"r{i}.json"), {}, {}) for i, level in
              enumerate([0.10, 0.10, 0.10, 0.12, 0.12, 0.12])]  # fmt: skip
    for point, conditions in zip(points, ["4096 fp16"] * 3 + ["8192 fp16"] * 3, strict=True):
        point.reference = {"gemm": {"median": 300.0, "spread": 1.0, "unit": "TFLOP/s", "conditions": conditions}}
    step = LaterStep(2, 0.2, 9.0, "regression", None, "persisted over 3 runs")
    step.attribution = Attribution("software", "GEMM 300 -> 300 TFLOP/s at the same step: software")
    timeline = Timeline({"gpu_name": "NVIDIA L4", "stage": "denoise_loop"}, "abc", points, [], [step])
    timeline.throttled = [Point("2026-10-02T06", None, 0.2, 0.01, 10, Path("hot.json"), {}, {})]
    document = timeline_document(timeline)
    [shown] = document["steps"]
    assert shown["extra"] == {"confidence": "high"}
    assert shown["reference"] == {"verdict": "software", "text": "GEMM 300 -> 300 TFLOP/s at the same step: software"}
    [event] = document["events"]
    assert event["kind"] == "reference" and event["after"] == 2 and "GEMM measured under other" in event["label"]
    assert document["reference_series"]["unit"] == "TFLOP/s"
    assert [p["at"] for p in document["throttled"]] == [1.5]
    page = pages.series_page(document, {"generated": "now"})
    assert "reference workload: GEMM 300 -&gt; 300 TFLOP/s" in page and "confidence: &quot;high&quot;" in page
    assert "throttled" in page
