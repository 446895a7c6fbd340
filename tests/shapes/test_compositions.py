"""sdshape shapes: budget enumeration (with T5 encoders), --measure composition, Pareto front, bad input."""

from __future__ import annotations

import json

import pytest

from sdshape.cli import main
from sdshape.shapes.compositions import candidates
from sdshape.shapes.fronts import params_front


@pytest.fixture(scope="module")
def zoo_listing():
    import io
    from contextlib import redirect_stdout

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert main(["shapes", "--budget", "1.07e9", "--resolution", "256", "--steps", "10", "--json"]) == 0
    return json.loads(buffer.getvalue())


@pytest.mark.slow
def test_budget_enumeration_includes_t5_and_stays_within_budget(zoo_listing):
    shapes = zoo_listing["shapes"]
    assert all(s["params"] <= 1.07e9 for s in shapes)
    assert [s["params"] for s in shapes] == sorted((s["params"] for s in shapes), reverse=True)
    names = {s["name"] for s in shapes}
    assert "clip-vit-l-14+sd15-unet+sd-vae" in names  # SD 1.5's own split
    t5 = [s for s in shapes if s["components"]["text_encoder"].startswith("t5-v1.1")]
    assert t5 and any(s["adaptation"] for s in t5)
    for shape in shapes:
        assert set(shape) >= {"name", "components", "params", "params_by_kind", "flops_per_image", "weight_bytes"}
        assert sum(shape["params_by_kind"].values()) == shape["params"]
        assert shape["weight_bytes"]["fp16"] == 2 * shape["params"]
    assert zoo_listing["skipped"]["over budget"] > 0  # T5-XXL alone is 4.8 B


def test_architectures_are_counted_once():
    vaes = [spec.name for spec in candidates("zoo")["vae"]]
    # The SD 2.1 and SDXL VAEs share the SD VAE's architecture, and FLUX's shares SD3's 16-channel one.
    assert vaes == ["sd-vae", "taesd", "sd3-vae"]


@pytest.mark.slow
def test_measure_composes_and_checks_on_tiny(tmp_path, capsys):
    out = tmp_path / "shapes"
    argv = [
        "shapes",
        "--budget",
        "5e6",
        "--family",
        "tiny",
        "--measure",
        "--device",
        "cpu",
        "--resolution",
        "64",
        "--steps",
        "2",
        "--rounds",
        "2",
        "--warmup",
        "1",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "cost per 100 M parameters" in printed and "check:" in printed
    document = json.loads((out / "shapes.json").read_text())
    for shape in document["shapes"]:
        measured = shape["measured"]
        assert measured["status"] == "ok" and measured["seconds_per_image"] > 0 and measured["peak_bytes"] > 0
        by_kind = measured["seconds_by_kind"]
        assert measured["seconds_per_image"] == pytest.approx(sum(by_kind.values()))
    assert document["check"]["end_to_end_s"] > 0 and document["check"]["status"] == "ok"
    assert {row["kind"] for row in document["cost_per_100m"]} == {"text_encoder", "denoiser", "vae"}
    assert "tiny-unet@xattn48" in document["components"]  # the adapted UNet is its own component
    assert (out / "pareto.png").stat().st_size > 10_000


def test_pareto_front():
    points = [(1.0, 5.0, "a"), (2.0, 4.0, "b"), (2.0, 6.0, "c"), (3.0, 4.5, "d"), (0.5, 1.0, "e")]
    # d has the most parameters; b has fewer but costs less; e fewer still and cheaper; a and c are beaten by b.
    assert [p[2] for p in params_front(points)] == ["e", "b", "d"]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--budget", "0"], "--budget must be a number of parameters above 0"),
        (["--budget", "1e9", "--family", "huge"], "unknown component family 'huge'"),
        (["--budget", "1e3"], "no composition of the zoo components fits"),
        (["--budget", "1e9", "--resolution", "100"], "multiple of 8"),
    ],
)
def test_bad_shapes_input(argv, message, capsys):
    assert main(["shapes", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err
