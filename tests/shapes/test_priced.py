"""sdshape shapes --gpu: every composition within a budget priced on a catalog card by the static model."""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout

import pytest

from sdshape.cli import main
from sdshape.core.vocabulary import KINDS
from sdshape.feasibility.fit import CANDIDATES, CONTEXT_BYTES, candidate_name
from sdshape.feasibility.formats import FORMATS
from sdshape.shapes.fronts import pareto_front
from sdshape.shapes.priced import COLUMNS, least_bytes_per_param, markdown, priced_rows

CARD = "RTX 4060 8GB"
TINY = ["shapes", "--family", "tiny", "--budget", "3e6", "--steps", "4", "--gpu", CARD]
# A card just above the CUDA context: the tiny compositions' all-resident peaks (about 5 MB) do not fit it.
SMALL_CARD = """
[gpu."Small 0.7535GB"]
architecture = "ada"
sms = 24
pcie = "4.0 x8"
vram_gib = 0.7535
bandwidth_gbs = 272
fp16_tflops_fp32_acc = 30.2
fp16_tflops_fp16_acc = 60.5
source = "test card: the RTX 4060 8GB's rates with 3.8 MB above the assumed CUDA context"
"""
BOUNDS = {"link", "host", "compute", "bandwidth"}


def run_json(argv: list[str]) -> dict:
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert main(argv) == 0
    return json.loads(buffer.getvalue())


@pytest.fixture(scope="module")
def priced():
    return run_json([*TINY, "--json"])


def cards_of(document: dict) -> list[str]:
    return [card["name"] for card in document["priced_conditions"]["cards"]]


def test_every_composition_is_priced_with_shares_that_sum_to_one(priced):
    assert priced["shapes"] and cards_of(priced) == [CARD]
    for shape in priced["shapes"]:
        entry = shape["priced"]
        assert math.isclose(sum(shape["param_shares"].values()), 1.0)
        assert math.isclose(sum(entry["byte_shares"].values()), 1.0)
        assert sum(entry["stored_bytes_by_kind"].values()) == entry["stored_weight_bytes"]
        card = entry["cards"][CARD]
        assert card["fits"] and card["seconds_per_image"] > 0
        assert math.isclose(sum(card["time_shares"].values()), 1.0)
        assert math.isclose(sum(card["seconds_by_kind"].values()) + card["link_s_per_image"], card["seconds_per_image"])
        low, high = card["seconds_band"]
        assert low <= card["seconds_per_image"] <= high
        assert card["bound"] in BOUNDS
        assert card["bound"] == card["bound_fit"] or card["bound_fit"] == "gpu"


def test_the_chosen_policy_fits_and_is_the_least_intrusive(priced):
    for shape in priced["shapes"]:
        card = shape["priced"]["cards"][CARD]
        assert card["policy"] == "all_resident" and not card["vae_tiling"]  # 8 GB holds a few MB all resident
        assert card["peak_bytes"] + CONTEXT_BYTES <= card["vram_bytes"]


def test_a_small_card_chooses_the_first_policy_that_fits(tmp_path):
    catalog = tmp_path / "cards.toml"
    catalog.write_text(SMALL_CARD)
    document = run_json([*TINY[:-2], "--gpu", "Small 0.7535GB", "--gpu-catalog", str(catalog), "--json"])
    chosen = []
    for shape in document["shapes"]:
        card = shape["priced"]["cards"]["Small 0.7535GB"]
        peaks = card["peak_bytes_by_candidate"]
        order = [candidate_name(p, t) for p, t in CANDIDATES]
        assert list(peaks) == order
        fitting = [name for name in order if peaks[name] + CONTEXT_BYTES <= card["vram_bytes"]]
        if not card["fits"]:
            assert not fitting and card["seconds_per_image"] is None
            continue
        name = candidate_name(card["policy"], card["vae_tiling"])
        assert name == fitting[0] and peaks[name] == card["peak_bytes"]
        chosen.append(name)
    assert chosen and any(name != "all_resident" for name in chosen)


@pytest.mark.parametrize(
    "precision", ["fp16", pytest.param("fp32", marks=pytest.mark.slow), pytest.param("nf4", marks=pytest.mark.slow)]
)
def test_a_byte_budget_counts_the_weights_as_the_precision_stores_them(precision):
    budget = 2 * 2**20
    document = run_json([*TINY[:2], "tiny", "--budget-bytes", "2MiB", "--steps", "4", "--gpu", CARD,
                         "--precision", precision, "--json"])  # fmt: skip
    assert document["priced_conditions"]["budget_bytes"] == budget
    assert document["priced_conditions"]["precision"] == precision
    for shape in document["shapes"]:
        assert shape["priced"]["stored_weight_bytes"] <= budget
        assert shape["params"] * least_bytes_per_param(FORMATS[precision]) <= budget
    everything = run_json([*TINY[:2], "tiny", "--budget", "1e7", "--steps", "4", "--gpu", CARD, "--precision",
                           precision, "--json"])  # fmt: skip
    within = {s["name"] for s in everything["shapes"] if s["priced"]["stored_weight_bytes"] <= budget}
    assert {s["name"] for s in document["shapes"]} == within  # exactly those, none missed
    assert 0 < len(document["shapes"]) < len(everything["shapes"])


def test_stored_bytes_follow_the_format(priced):
    fp32 = run_json([*TINY, "--precision", "fp32", "--json"])
    by_name = {s["name"]: s["priced"]["stored_bytes_by_kind"] for s in fp32["shapes"]}
    for shape in priced["shapes"]:
        for kind in KINDS:
            assert by_name[shape["name"]][kind] == 2 * shape["priced"]["stored_bytes_by_kind"][kind]


def test_the_zoo_systems_are_marked(priced):
    marks = {s["name"]: s["priced"]["zoo"] for s in priced["shapes"]}
    assert marks["tiny-clip+tiny-unet+tiny-vae"] == "tiny"
    assert marks["tiny-xl-clip-pair+tiny-xl-unet+tiny-vae"] == "tiny-xl"
    assert marks["tiny-t5+tiny-unet+tiny-vae"] is None  # an adapted UNet is no published system


@pytest.mark.slow
def test_each_distinct_component_is_traced_once(priced, tmp_path, monkeypatch):
    traced = priced["priced_conditions"]["stage_traces"]["which"]
    assert len(traced) == len(set(traced))
    # a fresh cache folder traces again; the second run reads every stage back
    monkeypatch.setenv("SDSHAPE_CACHE_DIR", str(tmp_path))
    first = run_json([*TINY, "--json"])["priced_conditions"]["stage_traces"]
    second = run_json([*TINY, "--json"])["priced_conditions"]["stage_traces"]
    assert first["traced"] == len(traced) and first["read_from_cache"] == 0
    assert second["traced"] == 0 and second["read_from_cache"] == len(traced)


def test_the_table_the_markdown_and_the_json_are_the_same_data(priced, tmp_path):
    out = tmp_path / "out"
    assert main([*TINY, "--out", str(out)]) == 0
    saved = json.loads((out / "shapes.json").read_text())
    assert saved["shapes"] == priced["shapes"]
    assert (out / "priced.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "shapes.md").read_text()
    assert text == markdown(saved)
    rows = priced_rows(saved, CARD)
    table = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert table[0] == "| " + " | ".join(COLUMNS) + " |"
    assert table[1:] == ["| " + " | ".join(str(r[c]) for c in COLUMNS) + " |" for r in rows]
    for row, shape in zip(rows, saved["shapes"], strict=True):
        card = shape["priced"]["cards"][CARD]
        assert row["composition"] == shape["name"]
        assert row["s/image"] == f"{card['seconds_per_image']:.2f}"
        assert row["bound"] == card["bound"] and row["zoo"] == (shape["priced"]["zoo"] or "")


def test_the_terminal_table(capsys):
    assert main(TINY) == 0
    printed = capsys.readouterr().out
    assert "on RTX 4060 8GB" in printed and "model, not measurement" in printed and "all_resident" in printed


def test_pareto_front_takes_less_vram_and_fewer_seconds():
    points = [(1.0, 5.0, "a"), (2.0, 4.0, "b"), (2.0, 6.0, "c"), (3.0, 4.5, "d"), (0.5, 9.0, "e")]
    assert [p[2] for p in pareto_front(points)] == ["e", "a", "b"]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--gpu", "RTX 9999"], "unknown GPU 'RTX 9999'"),
        (["--budget-bytes=-1GB"], "--budget-bytes '-1GB': not a size"),
        (["--budget-bytes", "nanGB"], "--budget-bytes 'nanGB': not a size"),
        (["--budget-bytes", "0GB"], "--budget-bytes '0GB': must be positive"),
        (["--budget-bytes", "99999999999GB"], "--budget-bytes must be a number of bytes"),
        (["--precision", "fp7"], "unknown precision 'fp7'"),
    ],
)
def test_bad_priced_input(argv, message, capsys):
    assert main([*TINY, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--family", "tiny"], "give --budget (parameters) or --budget-bytes"),
        (["--family", "tiny", "--budget-bytes", "1GB"], "--budget-bytes counts the weights"),
        (["--budget", "nan", "--gpu", CARD], "--budget must be"),
        (["--budget", "-5", "--gpu", CARD], "--budget must be"),
    ],
)
def test_bad_budgets(argv, message, capsys):
    assert main(["shapes", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err


@pytest.mark.slow
def test_full_size_compositions_on_a_consumer_card():
    """The zoo at SD 1.5's budget and size on an 8 GB card: SD 1.5 is marked, and its 3.4 GiB all-resident
    peak fits."""
    document = run_json(["shapes", "--budget", "1.07e9", "--gpu", CARD, "--json"])
    by_zoo = {s["priced"]["zoo"]: s for s in document["shapes"] if s["priced"]["zoo"]}
    assert "sd15" in by_zoo
    card = by_zoo["sd15"]["priced"]["cards"][CARD]
    assert card["fits"] and card["policy"] == "all_resident"
    assert card["time_shares"]["denoiser"] > 0.9 and card["bound"] in BOUNDS
    traced = document["priced_conditions"]["stage_traces"]["which"]
    assert len(traced) == len(set(traced))
