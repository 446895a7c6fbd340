"""Each model family's denoising loop against its own diffusers pipeline, on the same tiny components,
embeddings, initial noise and steps (``output_type="latent"``): the timings are the real algorithm's."""

from __future__ import annotations

import pytest
import torch

from sdshape.plan import resolve
from sdshape.session import Session

STEPS = 3


def _session(shape: str):
    session = Session(resolve(shape=shape, device="cpu", steps=STEPS, rounds=1, warmup=0), "eager")
    session.__enter__()
    session.build()
    return session


@pytest.fixture(scope="module")
def sessions():
    made = {}
    yield lambda shape: made.setdefault(shape, _session(shape))
    for session in made.values():
        session.__exit__(None, None, None)


def _halves(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    half = tensor.shape[0] // 2
    return tensor[:half], tensor[half:]


def _run(pipe, session, **kwargs) -> torch.Tensor:
    pipe.set_progress_bar_config(disable=True)
    side = session.plan.resolution
    with torch.inference_mode():
        return pipe(
            num_inference_steps=STEPS, height=side, width=side, output_type="latent",
            guidance_scale=session.plan.guidance, **kwargs,
        ).images  # fmt: skip


def _ours(session) -> torch.Tensor:
    with torch.inference_mode():
        return session.stages["denoise_loop"].run()


def test_pixart_loop_matches_pixart_alpha_pipeline(sessions):
    from diffusers import PixArtAlphaPipeline

    session = sessions("tiny-pixart")
    built, loop = session.built, session.stages["denoise_loop"]
    cond = loop.conditioning
    assert cond["encoder_hidden_states"].shape == (2, 16, 48)
    assert cond["encoder_attention_mask"].dtype == torch.long  # the tokenizer's mask, as the pipeline passes it
    negative, prompt = _halves(cond["encoder_hidden_states"])
    negative_mask, mask = _halves(cond["encoder_attention_mask"])
    pipe = PixArtAlphaPipeline(
        tokenizer=None, text_encoder=built.text_encoder.encoders[0], vae=built.vae.vae,
        transformer=built.denoiser.transformer, scheduler=built.family.make_scheduler(built.scheduler_config),
    )  # fmt: skip
    expected = _run(
        pipe, session, prompt_embeds=prompt, prompt_attention_mask=mask, negative_prompt_embeds=negative,
        negative_prompt_attention_mask=negative_mask, latents=loop.latents, use_resolution_binning=False,
        negative_prompt=None,
    )  # fmt: skip
    torch.testing.assert_close(_ours(session), expected, rtol=1e-5, atol=1e-5)


def test_sd3_loop_matches_stable_diffusion_3_pipeline(sessions):
    from diffusers import StableDiffusion3Pipeline

    session = sessions("tiny-sd3")
    built, loop = session.built, session.stages["denoise_loop"]
    cond = loop.conditioning
    # CLIP (77 tokens, 32 + 32 wide, zero-padded to T5's 64) joined with T5's own 24-token stream.
    assert cond["encoder_hidden_states"].shape == (2, 77 + 24, 64)
    assert cond["pooled_projections"].shape == (2, 64)
    encoders = built.text_encoder.encoders
    pipe = StableDiffusion3Pipeline(
        transformer=built.denoiser.transformer, scheduler=built.family.make_scheduler(built.scheduler_config),
        vae=built.vae.vae, text_encoder=encoders[0], tokenizer=None, text_encoder_2=encoders[1], tokenizer_2=None,
        text_encoder_3=encoders[2], tokenizer_3=None,
    )  # fmt: skip
    negative, prompt = _halves(cond["encoder_hidden_states"])
    negative_pooled, pooled = _halves(cond["pooled_projections"])
    expected = _run(
        pipe, session, prompt_embeds=prompt, negative_prompt_embeds=negative, pooled_prompt_embeds=pooled,
        negative_pooled_prompt_embeds=negative_pooled, latents=loop.latents,
    )  # fmt: skip
    torch.testing.assert_close(_ours(session), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", ["tiny-flux", "tiny-flux-schnell"])
def test_flux_loop_matches_flux_pipeline(sessions, shape):
    from diffusers import FluxPipeline

    session = sessions(shape)
    built, loop = session.built, session.stages["denoise_loop"]
    cond = loop.conditioning
    distilled = shape == "tiny-flux"
    assert session.results == {} and ("guidance" in cond.tensors) == distilled
    assert cond["encoder_hidden_states"].shape == (1, 24, 48)  # one row: no negative prompt is encoded
    assert loop.latents.shape == (1, 16, 16)  # 8x8 latents of 4 channels, packed 2x2 into 16 tokens of 16
    encoders = built.text_encoder.encoders
    pipe = FluxPipeline(
        scheduler=built.family.make_scheduler(built.scheduler_config), vae=built.vae.vae, text_encoder=encoders[0],
        tokenizer=None, text_encoder_2=encoders[1], tokenizer_2=None, transformer=built.denoiser.transformer,
    )  # fmt: skip
    expected = _run(
        pipe, session, prompt_embeds=cond["encoder_hidden_states"], pooled_prompt_embeds=cond["pooled_projections"],
        latents=loop.latents,
    )  # fmt: skip
    torch.testing.assert_close(_ours(session), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", ["tiny-flux", "tiny-sd3"])
def test_the_pipeline_stage_decodes_as_diffusers_decodes(sessions, shape):
    """Unpacking (FLUX) and the VAE's scaling and shift: our pipeline stage's image is diffusers' image."""
    session = sessions(shape)
    built, loop = session.built, session.stages["denoise_loop"]
    latents = _ours(session)
    vae = built.vae.vae
    unpacked = built.family.to_vae_latents(latents, built.specs, session.plan.resolution)
    with torch.inference_mode():
        expected = vae.decode(unpacked / vae.config.scaling_factor + vae.config.shift_factor, return_dict=False)[0]
        ours = session.stages["pipeline"].run()
    assert unpacked.shape == (1, 4, 8, 8)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)
    assert loop.family.name in ("flux", "sd3")


@pytest.mark.parametrize("shape", ["tiny-pixart", "tiny-sd3"])
def test_onnx_runtime_runs_the_dit_and_the_mmdit_with_parity(shape, tmp_path, monkeypatch):
    """Exported (TorchScript exporter, fp32) and run by ONNX Runtime, every stage matches eager fp32."""
    import json

    from sdshape.cli import main

    monkeypatch.setenv("SDSHAPE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out.json"
    argv = ["run", "--shape", shape, "--device", "cpu", "--steps", "2", "--rounds", "1", "--warmup", "0",
            "--backend", "eager,onnxruntime:plain", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    benchmarks = json.loads(out.read_text())["benchmarks"]
    rows = {(b["extra_info"]["backend"], b["extra_info"]["stage"]): b["extra_info"] for b in benchmarks}
    for stage in ("text_encoder", "denoise_loop", "vae_decode", "pipeline"):
        row = rows[("onnxruntime:plain", stage)]
        assert row["status"] == "ok" and row["parity"]["ok"] and row["parity"]["rel_l2"] < 1e-5, (stage, row["parity"])
    assert rows[("eager", "denoise_loop")]["family"] == shape.removeprefix("tiny-")
