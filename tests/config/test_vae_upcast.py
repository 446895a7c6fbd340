"""The VAE decodes as real pipelines decode it: SDXL's pipeline upcasts an fp16 VAE whose config says
``force_upcast``; no other pipeline does. The run says so in its rows; ``--vae-fp16`` keeps the fp16 decode."""

from __future__ import annotations

import dataclasses
import json

import pytest

from sdshape.config.limits import run_vae_precision
from sdshape.config.options import RunOptions
from sdshape.config.resolvers import resolve_shape
from sdshape.models.weights_folder import folder_upcasts_vae


@pytest.mark.parametrize(
    "shape, precision, vae_fp16, expected",
    [
        ("sdxl", "fp16", False, "fp32"),  # StableDiffusionXLPipeline: needs_upcasting
        ("sdxl", "fp16", True, "fp16"),  # the fp16-fix VAE's way
        ("sdxl", "bf16", False, "bf16"),  # the pipeline upcasts only a float16 VAE
        ("sd15", "fp16", False, "fp16"),  # StableDiffusionPipeline never upcasts
        ("flux-dev", "fp16", False, "fp16"),  # its VAE config says force_upcast; FluxPipeline ignores it
        ("sd3-medium", "fp16", False, "fp16"),
    ],
)
def test_which_pipelines_upcast_their_vae(shape, precision, vae_fp16, expected):
    upcasts = resolve_shape(RunOptions(shape=shape)).upcasts_vae
    assert run_vae_precision(precision, upcasts, vae_fp16) == expected


def test_a_weights_folder_upcasts_by_its_pipeline_class(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    assert folder_upcasts_vae(tmp_path, {})  # diffusers' default force_upcast: True
    assert not folder_upcasts_vae(tmp_path, {"force_upcast": False})
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    assert not folder_upcasts_vae(tmp_path, {})


def test_an_upcast_vae_runs_in_fp32_and_the_rows_say_so(tiny_plan):
    """fp16 elsewhere, fp32 VAE: its weights count 4 bytes a parameter, the pipeline hands it fp32 latents."""
    from sdshape.run.campaign import Campaign

    plan = dataclasses.replace(tiny_plan.with_options(precision="bf16", parity=False, rounds=1), vae_upcast=True)
    run = Campaign(plan)
    results, _ = run.measure("eager")
    rows = {r.stage: r for r in results}
    assert all(r.status == "ok" for r in rows.values()), {s: r.message for s, r in rows.items()}
    vae_params = rows["vae_decode"].cost.params
    assert rows["vae_decode"].memory.figures.weights_bytes >= 4 * vae_params
    assert rows["text_encoder"].memory.figures.weights_bytes <= 2 * rows["text_encoder"].cost.params + 4096
    assert rows["vae_decode"].conditions.vae_precision == "fp32"
    info = rows["pipeline"].to_extra_info()
    assert info["vae_precision"] == "fp32" and info["precision"] == "bf16"


def test_the_fp32_reference_of_an_upcast_run_is_all_fp32(tiny_plan):
    """The reference copies the run's plan with fp32: its VAE must be fp32 too (a precision copied along
    once made the bf16 run's reference decode in bf16, 77 s a call on this CPU)."""
    from sdshape.run.campaign import Campaign

    bf16 = tiny_plan.with_options(precision="bf16")
    assert Campaign(bf16).reference_plan().precision_of("vae") == "fp32"
    upcast = dataclasses.replace(tiny_plan.with_options(precision="fp16"), vae_upcast=True)
    assert upcast.precision_of("vae") == "fp32" and upcast.precision_of("denoiser") == "fp16"
