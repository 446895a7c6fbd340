"""Valid input that the libraries cannot take, found up front: position tables and --weights configs.

SD3's denoiser learns a table of positions: an image larger than it holds is refused by diffusers deep in
the first call. A ``--weights`` folder's config goes into a constructor that trusts it. Both are checked
before any work, in one line that names the limit, the file and the field.
"""

from __future__ import annotations

import json

import pytest

from sdshape.cli import main
from sdshape.config.limits import check_shape_resolution
from sdshape.core.errors import UsageError
from sdshape.models.families.base import largest_resolution
from sdshape.models.zoo import all_shapes, shape_components
from tests.cli.test_bad_input import one_line_exit_2

# -- position tables ---------------------------------------------------------------------------


def test_the_largest_resolution_is_exactly_what_the_position_table_holds():
    """At the bound the tiny SD3 denoiser runs; one latent patch more and diffusers itself refuses."""
    import torch

    from sdshape.models.build import meta_module
    from sdshape.models.call_inputs import call_shapes
    from sdshape.models.families import family_of
    from sdshape.models.flops import count_flops, meta_inputs

    specs = shape_components(all_shapes()["tiny-sd3"])
    largest = largest_resolution(specs["denoiser"], specs["vae"])
    assert largest == 16 * 1 * 8
    module = meta_module(specs["denoiser"], family_of(specs["denoiser"]))

    def flops_at(resolution: int) -> int:
        shapes = call_shapes(specs, batch=1, resolution=resolution, sequence_length=8)  # type: ignore[arg-type]
        return count_flops(module, meta_inputs(shapes.for_kind("denoiser")))  # type: ignore[arg-type]

    assert flops_at(largest) > 0
    with pytest.raises(ValueError, match="pos_embed_max_size"):
        flops_at(largest + 8)
    check_shape_resolution(specs, largest)
    with pytest.raises(UsageError, match=f"largest image it supports is {largest} px"):
        check_shape_resolution(specs, largest + 8)
    del torch


@pytest.mark.parametrize("name", sorted(all_shapes()))
def test_every_shape_supports_its_native_resolution(name):
    shape = all_shapes()[name]
    specs = shape_components(shape)
    largest = largest_resolution(specs["denoiser"], specs["vae"])
    assert largest is None or largest >= shape.native_resolution
    check_shape_resolution(specs, shape.native_resolution)


@pytest.mark.parametrize(
    "argv",
    [
        ["fit", "sd3-medium", "--resolution", "4096"],
        ["inspect", "sd3-medium", "--resolution", "4096"],
        ["fit", "sd35-large", "--resolution", "3200"],
        ["run", "--shape", "tiny-sd3", "--resolution", "256", "--device", "cpu"],
    ],
)
def test_a_resolution_beyond_the_position_table_is_one_line(argv, capsys):
    one_line_exit_2(argv, capsys, "largest image it supports is")


def test_shapes_of_the_tiny_family_work_at_every_budget(capsys):
    """The tiny family is priced at the tiny shape's own size; at a larger one, the compositions whose
    position table cannot hold it are left out and counted, not a traceback."""
    for budget in ("1e5", "1e6", "1e9"):
        code = main(["shapes", "--budget", budget, "--family", "tiny", "--json"])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        if code == 2:
            assert captured.err.count("\n") == 1 and "no composition" in captured.err
            continue
        assert code == 0
        document = json.loads(captured.out)
        assert document["resolution"] == all_shapes()["tiny"].native_resolution
        assert document["skipped"]["beyond the position table"] == 0
    assert main(["shapes", "--budget", "1e6", "--family", "tiny", "--resolution", "512", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["skipped"]["beyond the position table"] > 0
    assert not any("mmdit" in shape["name"] for shape in document["shapes"])


# -- --weights configs -----------------------------------------------------------------------------


def _config(spec) -> dict:
    key = "architectures" if spec.kind == "text_encoder" else "_class_name"
    return {**spec.config, key: [spec.library_class] if key == "architectures" else spec.library_class}


def _folder(tmp_path, shape: str):
    """A pipeline folder with the configs of a tiny shape (no weights: the checks come before loading)."""
    specs = shape_components(all_shapes()[shape])
    family_dirs = {"UNet2DConditionModel": "unet"}
    denoiser_dir = family_dirs.get(specs["denoiser"].library_class, "transformer")
    parts = specs["text_encoder"].parts or (specs["text_encoder"],)
    files = {f"text_encoder{'' if i == 0 else f'_{i + 1}'}/config.json": _config(part) for i, part in enumerate(parts)}
    files[f"{denoiser_dir}/config.json"] = _config(specs["denoiser"])
    files["vae/config.json"] = _config(specs["vae"])
    files["scheduler/scheduler_config.json"] = {"_class_name": "EulerDiscreteScheduler", "num_train_timesteps": 1000}
    for relative, config in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(json.dumps(config))
    return tmp_path, denoiser_dir


@pytest.mark.parametrize("shape", ["tiny", "tiny-xl", "tiny-pixart", "tiny-sd3", "tiny-flux"])
def test_sound_configs_of_every_family_pass(shape, tmp_path):
    from sdshape.models.weights_folder import weights_native_resolution

    folder, _ = _folder(tmp_path, shape)
    native = weights_native_resolution(folder)
    assert native > 0 and native % 8 == 0


# (file, field, bad value, words the message must hold)
BAD_FIELDS = [
    ("vae/config.json", "block_out_channels", 4, "AutoencoderKL takes tuple[int]"),
    ("vae/config.json", "block_out_channels", [32, "64"], "tuple[int]"),
    ("vae/config.json", "layers_per_block", -1, "cannot be negative"),
    ("vae/config.json", "scaling_factor", "0.18", "float"),
    ("vae/config.json", "force_upcast", "yes", "bool"),
    ("DENOISER/config.json", "num_attention_heads", 2.5, "int"),
    ("DENOISER/config.json", "in_channels", "4", "int"),
    ("DENOISER/config.json", "_class_name", 5, "expected a class name"),
    ("DENOISER/config.json", "_class_name", "NoSuchModel", "no diffusers or transformers class"),
    ("DENOISER/config.json", "_class_name", "AutoencoderKL", "no model family runs"),
    ("text_encoder/config.json", "hidden_size", "wide", "int"),
    ("text_encoder/config.json", "num_hidden_layers", -3, "cannot be negative"),
    ("text_encoder/config.json", "architectures", "CLIPTextModel", "expected a list of class names"),
    ("text_encoder/config.json", "architectures", ["NoSuchEncoder"], "no diffusers or transformers class"),
    ("scheduler/scheduler_config.json", "num_train_timesteps", "1000", "int"),
]


@pytest.mark.parametrize("shape", ["tiny", "tiny-sd3"])
@pytest.mark.parametrize(("relative", "field", "value", "words"), BAD_FIELDS)
def test_a_bad_config_field_is_one_line_naming_file_and_field(shape, relative, field, value, words, tmp_path, capsys):
    folder, denoiser_dir = _folder(tmp_path, shape)
    path = folder / relative.replace("DENOISER", denoiser_dir)
    config = json.loads(path.read_text())
    config[field] = value
    path.write_text(json.dumps(config))
    err = one_line_exit_2(["run", "--weights", str(folder), "--device", "cpu"], capsys, words)
    assert str(path) in err
    if not field.startswith("_") and field != "architectures":
        assert repr(field) in err
