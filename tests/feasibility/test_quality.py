"""Published quality against modelled cost (``inspect --all --quality``, the report's section): the loader refuses a
slip in quality.toml in one line, the JSON carries each system's figures and says where there are none, the
Pareto front and the text-encoder shares are right on numbers worked by hand, and a bad card is exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdshape.cli import main
from sdshape.core.errors import UsageError
from sdshape.feasibility import quality_field
from sdshape.feasibility.quality import METRICS, load_quality, parse_quality
from sdshape.feasibility.quality_field import NO_FIGURE, committed_rows, quality_document, quality_front, share_rows

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = ("sd15", "sdxl", "flux-dev")
FIGURE = """
[[figure]]
system = "sd15"
metric = "geneval_overall"
value = 0.43
higher_is_better = true
source = "GenEval README"
url = "https://github.com/djghosh13/geneval"
measured_by = "GenEval authors"
conditions = "4 images per prompt"
note = ""
"""


def refused(text: str, *expected: str) -> str:
    with pytest.raises(UsageError) as caught:
        parse_quality(text, "quality.toml", SYSTEMS)
    message = str(caught.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, message
    return message


def test_the_bundled_file_loads_every_figure_and_ablation():
    data = load_quality()
    assert len(data.figures) == 23 and len(data.ablations) == 5
    assert {f.metric for f in data.figures} == set(METRICS)
    depth = next(a for a in data.ablations if a.study == "sd3-mmdit-depth-scaling")
    assert [p.value for p in depth.points][:4] == [0.58, 0.62, 0.64, 0.68]
    assert parse_quality(FIGURE, "quality.toml", SYSTEMS).figures[0].value == 0.43


def test_a_slip_in_the_file_is_one_line_naming_the_row_the_value_and_the_choices():
    refused(FIGURE.replace('"geneval_overall"', '"clip_score"'), "figure 1", "'clip_score'", "geneval_overall")
    refused(FIGURE.replace('"sd15"', '"sd9"'), "figure 1", "'sd9'", "sd15, sdxl, flux-dev")
    refused(FIGURE.replace("0.43", "43"), "figure 1", "geneval_overall value", "at most 1", "43")
    refused(FIGURE.replace("0.43", '"high"'), "must be a number", "'high'")
    refused(FIGURE.replace('"geneval_overall"', '"coco_fid30k_zero_shot"').replace("0.43", "-2"), "above 0")
    refused(FIGURE.replace("higher_is_better = true", "higher_is_better = false"), "higher-is-better")
    refused(FIGURE.replace('source = "GenEval README"', 'source = " "'), "source is empty")
    refused(FIGURE.replace('note = ""', 'note = ""\nscore = 1'), "unknown fields ['score']")
    refused(FIGURE.replace('url = "https://github.com/djghosh13/geneval"\n', ""), "missing url")
    refused("[[figure]\n", "not TOML")
    ablation = '[[ablation]]\nstudy = "s"\nsource = "p"\nurl = "u"\ntable_or_figure = "t"\nvariable = "v"\n'
    ablation += 'finding = "f"\ncontrolled = true\nnote = ""\npoints = [{ setting = "a", metric = "m", value = nan }]\n'
    refused(ablation, "ablation 1 point 1", "value")


def test_a_bad_file_given_by_path_is_the_same_one_line(tmp_path):
    path = tmp_path / "quality.toml"
    path.write_text(FIGURE.replace('"sd15"', '"sd9"'))
    with pytest.raises(UsageError, match=r"quality\.toml: figure 1: system 'sd9'; valid choices: .*sd15"):
        load_quality(path)
    with pytest.raises(UsageError, match="cannot read"):
        load_quality(tmp_path / "missing.toml")


def test_the_front_keeps_what_nothing_beats_on_cost_and_score_together():
    points = [(1.0, 0.40, "a"), (2.0, 0.55, "b"), (2.0, 0.50, "c"), (3.0, 0.52, "d"), (4.0, 0.70, "e"),
              (4.0, 0.70, "e2")]  # fmt: skip
    assert [p[2] for p in quality_front(points)] == ["a", "b", "e"]  # c: b costs the same and scores more
    fid = [(1.0, 9.6, "sd15"), (3.0, 7.3, "pixart"), (5.0, 8.0, "worse and dearer")]
    assert [p[2] for p in quality_front(fid, higher_is_better=False)] == ["sd15", "pixart"]
    assert quality_front([]) == []


def _costs(weight_bytes: dict[str, int]) -> dict:
    card = {"fits": True, "supported": True, "unsupported_reason": None, "policy": "all_resident",
            "vae_tiling": False, "peak_bytes": 3 * 2**30, "seconds_per_image": 1.5, "seconds_band": [1.2, 3.0],
            "weight_bytes": weight_bytes}  # fmt: skip
    return {"card": "RTX 4090", "systems": {"sd15": card}}


def test_the_text_encoder_shares_are_of_params_and_of_stored_bytes():
    row = next(r for r in committed_rows() if r["shape"] == "sd15")
    stored = {"text_encoder": 100, "denoise_loop": 300, "vae_decode": 100}  # made up: the share is of these
    data = parse_quality(FIGURE, "quality.toml", ("sd15",))
    document = quality_document([row], _costs(stored), data)
    system = document["systems"][0]
    assert system["text_encoder_byte_share"] == pytest.approx(0.2)
    assert system["text_encoder_param_share"] == pytest.approx(
        row["params"]["text_encoder"] / sum(row["params"].values())
    )
    assert share_rows(document) == [["sd15", "123.06 M", "11.5%", "20.0%", "0.43 [1]", NO_FIGURE, NO_FIGURE]]


@pytest.fixture
def committed(monkeypatch):
    """The counts and costs as committed, not the two-minute count and the traces."""
    from sdshape.feasibility import field_cost
    from sdshape.models import inspection

    monkeypatch.setattr(inspection, "field_rows", lambda progress=None: committed_rows())
    monkeypatch.setattr(field_cost, "field_costs", lambda *args, **kwargs: quality_field.committed_costs())


def test_the_json_carries_each_systems_figures_and_says_where_there_are_none(committed, capsys):
    assert main(["inspect", "--all", "--quality", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    systems = {s["system"]: s for s in document["systems"]}
    assert len(systems) == 10 and document["conditions"]["card"] == "RTX 4090"
    assert document["conditions"]["precision"] == "bf16"
    sd15 = systems["sd15"]
    assert {(q["metric"], q["value"]) for q in sd15["quality"]} == {("geneval_overall", 0.43),
                                                                   ("coco_fid30k_zero_shot", 9.62)}  # fmt: skip
    assert all(q["source"] and q["url"] for q in sd15["quality"])
    assert sd15["quality_cells"] == {"geneval_overall": "0.43 [1, 4]", "dpg_bench_overall": NO_FIGURE,
                                     "coco_fid30k_zero_shot": "9.62 [23]"}  # fmt: skip
    assert systems["sd35-large"]["quality"] == []
    assert set(systems["sd35-large"]["quality_cells"].values()) == {NO_FIGURE}
    cost = systems["flux-dev"]["cost"]
    assert cost["policy"] == "model_offload" and cost["seconds_band"][0] < cost["seconds_per_image"]
    assert len(document["ablations"]) == 5 and document["ablations"][3]["points"][0]["value"] == 0.58
    assert "not a controlled ablation" in document["reading"]
    assert document["pareto"]["geneval_overall"]["peak_bytes"][0] == "sd15"


def test_out_writes_the_document_the_page_and_the_chart(committed, tmp_path, capsys):
    out = tmp_path / "quality"
    assert main(["inspect", "--all", "--quality", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "published quality beside cost on RTX 4090" in printed and "[22] pixart-alpha" in printed
    assert json.loads((out / "quality.json").read_text())["systems"][0]["system"] == "sd15"
    assert (out / "quality.png").read_bytes()[:4] == b"\x89PNG"
    page = (out / "quality.md").read_text()
    assert "![published quality" in page and "| sd35-large |" in page and NO_FIGURE in page


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["inspect", "--all", "--quality", "--gpu", "RTX 9999"], ("'RTX 9999'", "RTX 4090", "RTX 4060 8GB")),
        (["inspect", "--all", "--quality", "--precision", "fp12"], ("'fp12'", "bf16")),
        (["inspect", "--all", "--gpu", "RTX 4090"], ("--gpu go with `inspect --all --quality`",)),
        (["inspect", "sd15", "--quality"], ("--quality goes with --all",)),
    ],
    ids=["bad-card", "bad-precision", "gpu-without-quality", "quality-without-all"],
)
def test_bad_flags_are_exit_2_in_one_line_before_any_work(argv, expected, capsys, monkeypatch):
    from sdshape.models import inspection

    monkeypatch.setattr(inspection, "field_rows", lambda progress=None: pytest.fail("counted before checking"))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err


def test_the_report_has_the_section_with_every_figure_and_its_source(tmp_path):
    from sdshape.present.report import write

    markdown, page = write([str(ROOT / "results/cpu-amd-epyc/2026-11-22-sd15-eager-fp32.json")], tmp_path, None, None)
    text = markdown.read_text()
    section = text.split("## The field: quality against cost", 1)[1]
    assert "not a controlled ablation" in section and "![published quality" in section
    assert "| sd15 | 1.07 G | 1.99 GiB | all_resident |" in section and NO_FIGURE in section
    assert "### Text-encoder share beside quality" in section and "| pixart-alpha | 4.76 G | 87.3% |" in section
    assert "sd3-without-t5-at-inference" in section and "human-preference win rate, typography (%) 38" in section
    assert "none recorded (the note says why)" in section and "19.05 GB" in section
    for number, figure in enumerate(load_quality().figures, start=1):
        assert f"- [{number}] {figure.system} " in section and figure.source in section
    assert (tmp_path / "quality.png").read_bytes()[:4] == b"\x89PNG"
    assert "quality against cost" in page.read_text()


@pytest.mark.slow
def test_the_committed_costs_are_what_the_static_model_says_now():
    """``maintainer/field_cost.py`` wrote them; a change to the model or the catalog must rewrite them."""
    from sdshape.feasibility.catalog import load_catalog
    from sdshape.feasibility.field_cost import DEFAULT_CARD, DEFAULT_PRECISION, field_costs
    from sdshape.feasibility.formats import weight_format
    from sdshape.feasibility.time_model import bundled_time_model

    fresh = field_costs(load_catalog()[DEFAULT_CARD], weight_format(DEFAULT_PRECISION), bundled_time_model())
    committed = quality_field.committed_costs()
    assert fresh["systems"].keys() == committed["systems"].keys()
    for name, entry in fresh["systems"].items():
        assert json.loads(json.dumps(entry)) == committed["systems"][name], name
