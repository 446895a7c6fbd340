"""Stage outputs, and the denoising loop checked against diffusers' own pipelines."""

from __future__ import annotations

import pytest
import torch

from sdshape.config.plan import resolve
from sdshape.run.session import Session


def test_stage_outputs_have_the_right_shapes_and_are_finite(tiny_session):
    with torch.inference_mode():
        hidden = tiny_session.stages["text_encoder"].run()
        latents = tiny_session.stages["denoise_loop"].run()
        image = tiny_session.stages["vae_decode"].run()
        full = tiny_session.stages["pipeline"].run()
    assert hidden[0].shape == (2, 77, 32) and hidden[0].dtype == torch.float32
    assert latents.shape == (1, 4, 8, 8)
    assert image.shape == full.shape == (1, 3, 64, 64)
    for tensor in (hidden[0], latents, image, full):
        assert torch.isfinite(tensor).all()


def test_denoise_loop_marks_every_step(tiny_session):
    marks = []
    with torch.inference_mode():
        tiny_session.stages["denoise_loop"].run(mark=lambda: marks.append(1))
    assert len(marks) == tiny_session.plan.options.steps


def test_token_ids_put_unconditional_rows_first():
    from sdshape.models.stages import token_ids

    ids = token_ids(4, 77, 1000, torch.device("cpu"))
    assert ids.shape == (4, 77)
    assert ids[0, :2].tolist() == [0, 2] and ids[1].equal(ids[0])
    assert ids[2, 0] == 0 and (ids[2] == 2).sum() == 1 and ids[2].equal(ids[3])
    assert int(ids.max()) < 1000


@pytest.fixture(scope="module")
def tiny_xl_session():
    with Session(resolve(shape="tiny-xl", device="cpu", steps=3, rounds=1, warmup=0), "eager") as session:
        session.build()
        yield session


def _reference_latents(session):
    """diffusers' own pipeline on the session's components, embeddings and initial noise."""
    from sdshape.models.families.base import reference_latents

    built, plan = session.built, session.plan
    loop = session.stages["denoise_loop"]
    with torch.inference_mode():
        return reference_latents(
            built.family, built.modules, loop, plan.options.steps, plan.guidance, plan.options.resolution
        )


def test_loop_matches_stable_diffusion_pipeline(tiny_session):
    expected = _reference_latents(tiny_session)
    with torch.inference_mode():
        ours = tiny_session.stages["denoise_loop"].run()
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_sdxl_conditioning_matches_stable_diffusion_xl_pipeline(tiny_xl_session):
    cond = tiny_xl_session.stages["denoise_loop"].conditioning
    assert cond["encoder_hidden_states"].shape == (2, 77, 64)  # 32 + 32, penultimate layers concatenated
    assert cond["text_embeds"].shape == (2, 32)
    assert cond["time_ids"].tolist() == [[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]] * 2
    built = tiny_xl_session.built
    assert type(built.family.diffusers_pipeline(built.modules, None)).__name__ == "StableDiffusionXLPipeline"
    expected = _reference_latents(tiny_xl_session)
    with torch.inference_mode():
        ours = tiny_xl_session.stages["denoise_loop"].run()
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
