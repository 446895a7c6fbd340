"""Shape explorer, part 1: new zoo components, compositions, cross-attention adaptation, bad compositions."""

from __future__ import annotations

import dataclasses
import json

import pytest

from sdshape.cli import main
from sdshape.config.plan import resolve
from sdshape.core.errors import UsageError
from sdshape.models.build import count_params, meta_module
from sdshape.models.families.unet.family import UNetFamily
from sdshape.models.zoo import get_component
from sdshape.models.zoo.compose import compose, load_shapes_file

PUBLISHED = {
    "t5-v1.1-xxl": 4_762_310_656,  # the T5 encoder of DeepFloyd IF and SD3
    "bk-sdm-base": 579_384_964,  # BK-SDM paper: 579.38 M
    "bk-sdm-small": 482_346_884,  # 482.35 M
    "bk-sdm-tiny": 323_384_964,  # 323.38 M
}


@pytest.mark.parametrize("name,expected", sorted(PUBLISHED.items()))
def test_new_component_counts(name, expected):
    assert count_params(meta_module(get_component(name))) == expected


def test_t5_family_grows_and_taesd_is_tiny():
    sizes = [count_params(meta_module(get_component(f"t5-v1.1-{s}"))) for s in ("small", "base", "large", "xl", "xxl")]
    assert sizes == sorted(sizes) and 30e6 < sizes[0] < 40e6
    assert count_params(meta_module(get_component("taesd"))) < 3_000_000
    scaled = count_params(meta_module(get_component("sd15-unet-w0.5-l2")))
    assert 0.2e9 < scaled < 0.3e9  # half the width: about a quarter of the parameters


def test_cross_attention_adaptation_costs_exactly_the_kv_projections():
    unet = get_component("bk-sdm-small")
    adapted, _ = UNetFamily().adapt(unet, get_component("openclip-vit-h-14"))  # 1024 wide
    before, after = meta_module(unet), meta_module(adapted)
    kv = [m for name, m in before.named_modules() if name.endswith("attn2")]
    expected = sum(2 * m.to_k.out_features * (1024 - 768) for m in kv)  # to_k and to_v have no bias
    assert count_params(after) - count_params(before) == expected
    assert UNetFamily().adapt(unet, get_component("clip-vit-l-14")) == (unet, None)


def test_composition_reports_the_change():
    shape = compose("t5-v1.1-large", "bk-sdm-small", "taesd", sequence_length=128)
    assert shape.name == "t5-v1.1-large+bk-sdm-small+taesd"
    assert shape.specs["denoiser"].config["cross_attention_dim"] == 1024
    assert shape.sequence_length == 128 and shape.native_resolution == 512
    assert "cross-attention 768 -> 1024" in shape.notes[0] and "+3,440,640 parameters" in shape.notes[0]


def test_run_options_compose_without_building():
    plan = resolve(
        shape="sd15",
        text_encoder="t5-v1.1-large",
        denoiser="bk-sdm-small",
        vae="taesd",
        device="cpu",
        sequence_length=128,
    )
    assert plan.options.shape == "t5-v1.1-large+bk-sdm-small+taesd" and plan.options.sequence_length == 128
    assert plan.shape_spec.specs["vae"].name == "taesd"


BAD = [
    (dict(text_encoder="t5-v1.1-huge"), "unknown component 't5-v1.1-huge'"),
    (dict(denoiser="taesd"), "'taesd' is a vae, not a denoiser"),
    (dict(shape="sdxl", text_encoder="clip-vit-l-14"), "needs 1280-wide pooled text embeddings"),
    (dict(sequence_length=100), "takes at most 77 tokens"),
    (dict(sequence_length=0), "--seq-len must be at least 1"),
]


@pytest.mark.parametrize("options,message", BAD, ids=[m for _, m in BAD])
def test_bad_compositions(options, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve(device="cpu", **{"shape": "sd15", **options})


def test_vae_latent_channels_must_match(monkeypatch):
    import sdshape.models.zoo as zoo

    wide = dataclasses.replace(
        get_component("tiny-vae"), name="wide-vae", config={**get_component("tiny-vae").config, "latent_channels": 16}
    )
    monkeypatch.setitem(zoo.all_components(), "wide-vae", wide)
    with pytest.raises(UsageError, match="VAE wide-vae has 16 latent channels but denoiser tiny-unet takes 4"):
        compose("tiny-clip", "tiny-unet", "wide-vae")


@pytest.mark.slow
def test_shapes_file_and_a_composed_run(tmp_path, capsys):
    shapes = tmp_path / "shapes.toml"
    shapes.write_text(
        '[shape.t5-tiny]\ntext_encoder = "tiny-t5"\nunet = "tiny-unet"\nvae = "taesd"\nsequence_length = 120\n'
    )
    assert set(load_shapes_file(shapes)) == {"t5-tiny"}
    out = tmp_path / "run.json"
    argv = [
        "run",
        "--shapes-file",
        str(shapes),
        "--shape",
        "t5-tiny",
        "--device",
        "cpu",
        "--resolution",
        "64",
        "--steps",
        "2",
        "--rounds",
        "1",
        "--warmup",
        "0",
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "composition: UNet tiny-unet cross-attention 32 -> 48" in printed
    infos = {b["extra_info"]["stage"]: b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]}
    assert all(info["status"] == "ok" for info in infos.values())
    assert infos["text_encoder"]["sequence_length"] == 120
    assert infos["vae_decode"]["components"]["vae"] == "taesd"


def test_bad_shapes_files(tmp_path, capsys):
    cases = {
        "[shape.x]\nunet = 'tiny-unet'\nvae = 'tiny-vae'\n": "missing text_encoder",
        "[shape.x]\ntext_encoder = 'tiny-clip'\nunet = 'tiny-unet'\nvae = 'tiny-vae'\ncolour = 1\n": "unknown keys",
        "[shape.sd15]\ntext_encoder = 'tiny-clip'\nunet = 'tiny-unet'\nvae = 'tiny-vae'\n": "would shadow",
        "[shape\n": "not TOML",
    }
    for body, message in cases.items():
        path = tmp_path / "bad.toml"
        path.write_text(body)
        assert main(["run", "--shapes-file", str(path), "--device", "cpu"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and message in err
