"""sdshape shapes --gpu CARD --measure: the priced table's first --top N measured, beside the model's figures."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pytest

from sdshape.cli import main
from sdshape.feasibility.catalog import load_catalog
from sdshape.shapes import composed_costs
from sdshape.shapes.beside import (
    against_model,
    beside_rows,
    device_of,
    markdown_section,
    model_backend,
    ranked_first,
    statement,
)
from sdshape.shapes.priced import markdown, priced_rows
from tests.cli.test_bad_input import one_line_exit_2

CARD = "RTX 4060 8GB"
# Ten tiny compositions within 4.5e5 parameters (the mmdit and pixart ones): cheap to price and to measure.
TINY = ["shapes", "--family", "tiny", "--budget", "4.5e5", "--gpu", CARD, "--measure", "--device", "cpu",
        "--resolution", "64", "--steps", "2"]  # fmt: skip


def run_json(argv: list[str]) -> dict:
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert main(argv) == 0
    return json.loads(buffer.getvalue())


# -- input, refused before anything is traced or measured --------------------------------------------


@pytest.mark.parametrize(
    "value,expected",
    [
        ("0", "--top must be at least 1, got 0"),
        ("-3", "--top must be at least 1, got -3"),
        ("1001", "--top must be at most 1000, got 1001"),
        ("2.5", "--top"),
        ("nan", "--top"),
        ("five", "--top"),
    ],
)
def test_top_is_bounded(value, expected, capsys):
    one_line_exit_2([*TINY, f"--top={value}"], capsys, expected)


def test_top_needs_gpu_and_measure(capsys):
    one_line_exit_2(["shapes", "--family", "tiny", "--budget", "4.5e5", "--gpu", CARD, "--top", "2"], capsys,
                    "--top 2 chooses which priced compositions --measure times")  # fmt: skip
    one_line_exit_2(["shapes", "--family", "tiny", "--budget", "4.5e5", "--measure", "--device", "cpu", "--top", "2"],
                    capsys, "give --gpu CARD and --measure")  # fmt: skip


def test_measure_sets_the_measurement_beside_one_card(capsys):
    one_line_exit_2([*TINY, "--gpu", "RTX 4090"], capsys, "give --gpu once, got RTX 4060 8GB, RTX 4090")


# -- the pieces --------------------------------------------------------------------------------------


def test_measured_backends_price_as_their_counterparts():
    assert model_backend("eager", {"cuda_graph": False}) == ("eager", True)
    assert model_backend("eager", {"cuda_graph": True}) == ("compile", True)  # graph replay: no host launches
    assert model_backend("compile", {"compile_mode": "reduce-overhead"}) == ("compile", True)
    assert model_backend("compile", {"compile_mode": "default"}) == ("eager", False)
    assert model_backend("onnx", {}) == ("eager", False)


def _entry(seconds: float | None, policy: str | None = "all_resident", tiling: bool = False) -> dict:
    band = [seconds * 0.8, seconds * 1.5] if seconds else None
    card = {"seconds_per_image": seconds, "seconds_band": band, "policy": policy, "vae_tiling": tiling,
            "peak_bytes_all_resident": 3 * 2**30}  # fmt: skip
    return {"cards": {CARD: card}}


def test_the_first_n_the_model_fits_are_chosen_in_the_table_order():
    priced = [("a", _entry(2.0)), ("b", _entry(None, None)), ("c", _entry(1.0)), ("d", _entry(3.0))]
    assert ranked_first(priced, CARD, 2) == ["a", "c"]  # b does not fit the card: no model figure to set beside
    assert ranked_first(priced, CARD, 10) == ["a", "c", "d"]


def test_the_device_is_the_card_only_when_the_catalog_names_it_so():
    catalog = load_catalog(None)
    h100 = {"device": "cuda", "gpu_name": "NVIDIA H100 80GB HBM3", "gpu_memory_bytes": 80 * 10**9}
    same = device_of(h100, catalog, "H100 SXM")
    assert same["same_card"] and same["device_card"] == "H100 SXM"
    assert "agreement is the measured median inside the model's band" in statement("H100 SXM", same)
    other = device_of(h100, catalog, "H200")
    assert not other["same_card"]
    assert statement("H200", other) == (
        "the model priced H200; the measurement ran on NVIDIA H100 80GB HBM3 (catalog: H100 SXM): both are "
        "shown, and no agreement is claimed"
    )
    unknown = device_of({"device": "cuda", "gpu_name": "NVIDIA B200", "gpu_memory_bytes": 1}, catalog, "H200")
    assert not unknown["same_card"] and "NVIDIA B200 (not in the catalog)" in statement("H200", unknown)
    cpu = device_of({"device": "cpu", "cpu_model": "AMD EPYC"}, catalog, CARD)
    assert not cpu["same_card"] and "ran on the CPU AMD EPYC" in statement(CARD, cpu)


def _shape(measured_s: float, entry: dict) -> dict:
    measured = {"status": "ok", "seconds_per_image": measured_s, "ci_s": 0.01, "peak_bytes": 2**30}
    return {"name": "x", "priced": entry, "measured": measured}


def test_the_verdict_is_given_only_on_the_priced_card_under_the_same_policy_and_backend():
    inside = against_model(_shape(2.5, _entry(2.0)), CARD, True, True)
    assert inside["verdict"] == "within the band" and inside["within_band"] is True
    assert inside["seconds_ratio"] == pytest.approx(1.25) and inside["peak_ratio"] == pytest.approx(1 / 3)
    outside = against_model(_shape(3.5, _entry(2.0)), CARD, True, True)  # band 1.6-3.0
    assert outside["verdict"] == "outside the band" and outside["within_band"] is False
    elsewhere = against_model(_shape(2.5, _entry(2.0)), CARD, False, True)
    assert elsewhere["verdict"] is None and elsewhere["within_band"] is None and elsewhere["seconds_ratio"] is None
    assert elsewhere["no_verdict_because"] == "not measured on the priced card"
    assert elsewhere["model_seconds_per_image"] == 2.0 and elsewhere["measured_seconds_per_image"] == 2.5  # both shown
    offload = against_model(_shape(2.5, _entry(2.0, "model_offload")), CARD, True, True)
    assert offload["verdict"] is None and "model_offload; measured all resident" in offload["no_verdict_because"]
    backend = against_model(_shape(2.5, _entry(2.0)), CARD, True, False)
    assert backend["verdict"] is None and "no counterpart" in backend["no_verdict_because"]


# -- end to end on the CPU ---------------------------------------------------------------------------


def _scripted_measure(seconds: float, machine: dict):
    """A stand-in for the explorer's measurement: every composition it is given costs ``seconds`` per image
    and 1 GiB, on ``machine``; it records which compositions it was given."""
    given: list[str] = []

    def measure(compositions, plan, progress=None, check=0):
        for composition in compositions:
            given.append(composition.shape.name)
            composition.measured = {"status": "ok", "seconds_per_image": seconds, "ci_s": seconds / 100,
                                    "peak_bytes": 2**30, "rank": 1, "tied": False}  # fmt: skip
        return {"components": {}, "check": None, "machine": machine}

    return measure, given


@pytest.mark.slow
def test_on_the_priced_card_the_first_n_are_measured_and_judged(monkeypatch):
    """The wiring of a GPU run on its own card, the measurement scripted: an RTX 4060 reported by torch."""
    machine = {"device": "cuda", "gpu_name": "NVIDIA GeForce RTX 4060", "gpu_memory_bytes": 8 * 2**30}
    fake, given = _scripted_measure(0.02, machine)
    monkeypatch.setattr(composed_costs, "measure", fake)
    document = run_json([*TINY, "--top", "3", "--json"])
    order = [row["composition"] for row in priced_rows(document, CARD) if row["s/image"] != "-"]
    assert given == order[:3]
    comparison = document["comparison"]
    assert comparison["same_card"] and comparison["device_card"] == CARD and comparison["top"] == 3
    for shape in document["shapes"]:
        if shape["name"] not in given:
            assert "measured" not in shape
            continue
        pair, model = shape["measured"]["against_model"], shape["priced"]["cards"][CARD]
        low, high = model["seconds_band"]
        assert pair["model_seconds_per_image"] == model["seconds_per_image"] and pair["model_band"] == [low, high]
        assert pair["verdict"] == ("within the band" if low <= 0.02 <= high else "outside the band")
        assert pair["peak_ratio"] == pytest.approx(2**30 / model["peak_bytes_all_resident"])


@pytest.mark.slow
def test_measured_on_the_cpu_beside_the_priced_card(tmp_path, capsys):
    """A real tiny measurement: the first two of the priced table, measured on this CPU, shown beside the
    RTX 4060 model without a verdict; the table, the JSON, shapes.md and the chart are the same data."""
    out = tmp_path / "out"
    document = run_json([*TINY, "--top", "2", "--rounds", "2", "--warmup", "0", "--json", "--out", str(out)])
    saved = json.loads((out / "shapes.json").read_text())
    assert saved == document
    order = [row["composition"] for row in priced_rows(document, CARD) if row["s/image"] != "-"]
    measured = [s["name"] for s in document["shapes"] if "measured" in s]
    assert measured == order[:2]
    comparison = document["comparison"]
    assert not comparison["same_card"] and comparison["device"] == "cpu"
    assert comparison["statement"].startswith(f"the model priced {CARD}; the measurement ran on the CPU ")
    assert comparison["statement"].endswith("no agreement is claimed")
    for shape in document["shapes"][:2]:
        pair = shape["measured"]["against_model"]
        assert pair["measured_seconds_per_image"] == shape["measured"]["seconds_per_image"] > 0
        assert pair["model_seconds_per_image"] == shape["priced"]["cards"][CARD]["seconds_per_image"] > 0
        assert pair["measured_peak_bytes"] > 0 and pair["model_peak_bytes_all_resident"] > 0
        assert pair["verdict"] is None and pair["within_band"] is None
    text = (out / "shapes.md").read_text()
    assert text == markdown(saved) and "\n".join(markdown_section(saved)) in text
    columns, rows = beside_rows(saved)
    assert "verdict" not in columns and [r["composition"] for r in rows] == measured
    assert (out / "beside.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "priced.png").exists() and (out / "pareto.png").exists()
