"""The families' zoo at full size on the meta device: exact parameter counts, buffers apart, pipeline
defaults, cross-family compositions, and runs refused before anything is allocated."""

from __future__ import annotations

import json

import pytest

from sdshape.cli import main
from sdshape.core.errors import UsageError
from sdshape.models.build import count_buffers, count_params, meta_module
from sdshape.models.zoo import get_component, get_shape, shape_components

# Counted from the published configs; the table, digit for digit.
COUNTS = {
    "t5-v1.1-xxl": 4_762_310_656,
    "pixart-alpha-xl-2-1024": 611_349_152,
    "pixart-sigma-xl-2-1024": 610_856_096,
    "clip-vit-l-14-proj": 123_650_304,
    "openclip-vit-bigg-14": 694_659_840,
    "sd3-medium-mmdit": 2_028_328_000,
    "sd35-medium-mmdit": 2_243_171_520,
    "sd35-large-mmdit": 8_056_627_520,
    "sd3-vae": 83_819_683,
    "flux-vae": 83_819_683,
    "flux-dev-transformer": 11_901_408_320,
    "flux-schnell-transformer": 11_891_178_560,
}
# Persistent position tables that checkpoints store and VRAM holds: in the weight bytes, not the parameters.
BUFFERS = {
    "sd3-medium-mmdit": 192 * 192 * 1536,
    "sd35-medium-mmdit": 384 * 384 * 1536,
    "sd35-large-mmdit": 192 * 192 * 2432,
    "pixart-alpha-xl-2-1024": 64 * 64 * 1152,
    "flux-dev-transformer": 0,
}


@pytest.mark.parametrize("name", COUNTS)
def test_parameter_counts_are_exact(name):
    assert count_params(meta_module(get_component(name))) == COUNTS[name]


@pytest.mark.parametrize("name", BUFFERS)
def test_position_tables_are_buffers_not_parameters(name):
    assert count_buffers(meta_module(get_component(name))) == BUFFERS[name]


@pytest.mark.parametrize(
    ("shape", "text_share"),
    [("sd15", 0.115), ("sdxl", 0.236), ("pixart-alpha", 0.873), ("sd3-medium", 0.725), ("sd35-large", 0.407),
     ("flux-dev", 0.290)],
)  # fmt: skip
def test_text_encoder_share_of_each_system(shape, text_share):
    counts = {kind: count_params(meta_module(spec)) for kind, spec in shape_components(get_shape(shape)).items()}
    assert counts["text_encoder"] / sum(counts.values()) == pytest.approx(text_share, abs=0.0005)


def test_sd3_text_encoders_are_the_three():
    counts = [count_params(meta_module(p)) for p in get_component("sd3-clip-l+bigg+t5-xxl").parts]
    assert counts == [123_650_304, 694_659_840, 4_762_310_656]


@pytest.mark.parametrize(
    ("shape", "steps", "guidance", "tokens", "resolution"),
    [("pixart-alpha", 20, 4.5, 120, 1024), ("pixart-sigma", 20, 4.5, 300, 1024), ("sd3-medium", 28, 7.0, 256, 1024),
     ("sd35-medium", 28, 7.0, 256, 1024), ("sd35-large", 28, 7.0, 256, 1024), ("flux-dev", 28, 3.5, 512, 1024),
     ("flux-schnell", 4, 0.0, 512, 1024), ("sd15", 50, 7.5, 77, 512), ("sdxl", 50, 5.0, 77, 1024)],
)  # fmt: skip
def test_each_shape_takes_its_pipelines_defaults(shape, steps, guidance, tokens, resolution):
    spec = get_shape(shape)
    assert (spec.steps, spec.guidance_scale, spec.sequence_length, spec.native_resolution) == (
        steps, guidance, tokens, resolution,
    )  # fmt: skip


def test_inspect_shows_buffers_apart_and_the_guidance_each_family_uses(capsys):
    assert main(["inspect", "sd3-medium", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    loop = report["stages"]["denoise_loop"]
    assert loop["params"] == 2_028_328_000 and loop["buffers"] == 56_623_104
    assert loop["weight_bytes"]["bf16"] == 2 * (2_028_328_000 + 56_623_104)
    assert report["guidance"] == "cfg" and report["steps"] == 28
    # CLIP at 77 tokens beside T5 at 256: the MMDiT attends to 333 text tokens, CFG-doubled.
    assert loop["call_inputs"]["encoder_hidden_states"] == [2, 333, 4096]
    assert main(["inspect", "flux-dev", "--json"]) == 0
    flux = json.loads(capsys.readouterr().out)
    assert flux["guidance"] == "distilled" and flux["stages"]["denoise_loop"]["call_inputs"]["sample"] == [1, 4096, 64]


def test_a_full_size_run_that_cannot_fit_is_refused_before_anything_is_allocated(capsys, monkeypatch):
    from sdshape.feasibility import preflight

    monkeypatch.setattr(preflight, "device_memory", lambda device: (16 << 30, "this machine has available"))
    assert main(["run", "--shape", "flux-dev", "--device", "cpu", "--precision", "bf16"]) == 2
    err = capsys.readouterr().err
    assert "weights alone need 31.42 GiB" in err and "denoiser 22.17 GiB" in err and "--force-size" in err


@pytest.mark.parametrize(
    ("text", "denoiser", "vae", "note"),
    [
        ("t5-v1.1-xxl", "sd15-unet", "sd-vae", "cross-attention 768 -> 4096"),  # Imagen's move
        (
            "clip-vit-l-14",
            "pixart-alpha-xl-2-1024",
            "sd-vae",
            "caption projection 4096 -> 768 to match clip-vit-l-14: -3,833,856",
        ),
        ("sd3-clip-l+bigg+t5-xxl", "flux-dev-transformer", "flux-vae", None),
    ],
)
def test_compositions_cross_families(text, denoiser, vae, note):
    from sdshape.models.zoo.compose import compose

    if note is None:
        with pytest.raises(UsageError, match=r"one CLIP \(pooled\) and one T5"):
            compose(text, denoiser, vae)
        return
    shape = compose(text, denoiser, vae)
    assert note in shape.notes[0]


def test_the_unet_flag_still_works_as_an_alias():
    from sdshape.config.plan import resolve

    plan = resolve(shape="tiny", denoiser="tiny-pixart", text_encoder="tiny-t5", device="cpu")
    assert (
        plan.options.shape == "tiny-t5+tiny-pixart+tiny-vae"
        and plan.guidance == 4.5
        and plan.options.sequence_length == 77
    )  # the base shape's
    from sdshape.cli.parser import build_parser

    args = build_parser(backend_flags=True).parse_args(["run", "--unet", "bk-sdm-small"])
    assert args.denoiser == "bk-sdm-small"


def test_the_committed_field_table_matches_the_configs():
    from sdshape.feasibility.quality_field import committed_rows
    from sdshape.models.inspection import SYSTEMS

    rows = committed_rows()
    assert [row["shape"] for row in rows] == [name for name, _ in SYSTEMS]
    for row in rows:
        specs = shape_components(get_shape(row["shape"]))
        params = {
            stage: count_params(meta_module(specs[kind]))
            for stage, kind in (("text_encoder", "text_encoder"), ("denoise_loop", "denoiser"), ("vae_decode", "vae"))
        }
        assert row["params"] == params, row["shape"]
