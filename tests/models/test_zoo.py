"""Zoo: exact parameter counts (meta device), sources, and the zoo listing schema."""

from __future__ import annotations

import pytest

from sdshape.core.errors import UsageError
from sdshape.models.build import count_params, meta_module
from sdshape.models.families import family_of
from sdshape.models.zoo import all_components, all_shapes, get_component, get_shape, shape_components

# Published counts: diffusers/transformers models loaded from the hub repositories.
PUBLISHED = {
    "clip-vit-l-14": 123_060_480,
    "sd15-unet": 859_520_964,
    "sd-vae": 83_653_863,
    "openclip-vit-h-14": 340_387_840,
    "sd21-unet": 865_910_724,
    "openclip-vit-bigg-14": 694_659_840,
    "sdxl-clip-l+bigg": 123_060_480 + 694_659_840,
    "sdxl-unet": 2_567_463_684,
    "sdxl-vae": 83_653_863,
}


@pytest.mark.parametrize("name,expected", sorted(PUBLISHED.items()))
def test_published_parameter_counts(name, expected):
    assert count_params(meta_module(get_component(name))) == expected


def test_sd15_total_and_shares():
    counts = {kind: count_params(meta_module(spec)) for kind, spec in shape_components(get_shape("sd15")).items()}
    assert counts == {"text_encoder": 123_060_480, "denoiser": 859_520_964, "vae": 83_653_863}
    assert sum(counts.values()) == 1_066_235_307
    assert round(counts["denoiser"] / sum(counts.values()), 2) == 0.81


def test_every_spec_names_a_source_and_shapes_resolve():
    for spec in all_components().values():
        assert spec.source and spec.description
        for part in spec.parts:
            assert part.source
    for shape in all_shapes().values():
        specs = shape_components(shape)
        assert {s.kind for s in specs.values()} == {"text_encoder", "denoiser", "vae"}
        # A named shape's denoiser takes its text encoders as they are: its family adapts nothing.
        assert family_of(specs["denoiser"]).adapt(specs["denoiser"], specs["text_encoder"]) == (
            specs["denoiser"],
            None,
        ), shape.name


def test_unknown_names_list_the_choices():
    with pytest.raises(UsageError, match=r"unknown shape .sd3.*sd15, sd21, sdxl, tiny"):
        get_shape("sd3")
    with pytest.raises(UsageError, match="unknown component"):
        get_component("nope")


def test_zoo_listing_schema():
    from sdshape.cli.inventory import zoo_listing

    listing = zoo_listing()
    components = {c["name"]: c for c in listing["components"]}
    assert components["sd15-unet"] == {**components["sd15-unet"], "kind": "denoiser", "params": 859_520_964}
    assert {c["kind"] for c in listing["components"]} == {"text_encoder", "denoiser", "vae"}
    shapes = {s["name"]: s for s in listing["shapes"]}
    assert shapes["sd15"]["params"] == 1_066_235_307
    assert shapes["sd15"]["components"] == {"text_encoder": "clip-vit-l-14", "denoiser": "sd15-unet", "vae": "sd-vae"}
    assert abs(sum(shapes["sdxl"]["param_shares"].values()) - 1) < 1e-9
