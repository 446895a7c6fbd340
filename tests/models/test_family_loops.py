"""Each model family's denoising loop against its own diffusers pipeline, on the same tiny components,
embeddings, initial noise and steps (``output_type="latent"``): the timings are the real algorithm's."""

from __future__ import annotations

import pytest
import torch

from sdshape.config.plan import resolve
from sdshape.models.families.base import reference_latents
from sdshape.run.session import Session

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


def _expected(session) -> torch.Tensor:
    built, plan = session.built, session.plan
    loop = session.stages["denoise_loop"]
    with torch.inference_mode():
        return reference_latents(built.family, built.modules, loop, STEPS, plan.guidance, plan.options.resolution)


def _ours(session) -> torch.Tensor:
    with torch.inference_mode():
        return session.stages["denoise_loop"].run()


def test_pixart_loop_matches_pixart_alpha_pipeline(sessions):
    session = sessions("tiny-pixart")
    cond = session.stages["denoise_loop"].conditioning
    assert cond["encoder_hidden_states"].shape == (2, 16, 48)
    assert cond["encoder_attention_mask"].dtype == torch.long  # the tokenizer's mask, as the pipeline passes it
    assert type(session.built.family.diffusers_pipeline(session.built.modules, None)).__name__ == "PixArtAlphaPipeline"
    torch.testing.assert_close(_ours(session), _expected(session), rtol=1e-5, atol=1e-5)


def test_sd3_loop_matches_stable_diffusion_3_pipeline(sessions):
    session = sessions("tiny-sd3")
    cond = session.stages["denoise_loop"].conditioning
    # CLIP (77 tokens, 32 + 32 wide, zero-padded to T5's 64) joined with T5's own 24-token stream.
    assert cond["encoder_hidden_states"].shape == (2, 77 + 24, 64)
    assert cond["pooled_projections"].shape == (2, 64)
    torch.testing.assert_close(_ours(session), _expected(session), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", ["tiny-flux", "tiny-flux-schnell"])
def test_flux_loop_matches_flux_pipeline(sessions, shape):
    session = sessions(shape)
    loop = session.stages["denoise_loop"]
    cond = loop.conditioning
    assert ("guidance" in cond.tensors) == (shape == "tiny-flux")  # dev: distilled guidance; schnell: none
    assert cond["encoder_hidden_states"].shape == (1, 24, 48)  # one row: no negative prompt is encoded
    assert loop.latents.shape == (1, 16, 16)  # 8x8 latents of 4 channels, packed 2x2 into 16 tokens of 16
    torch.testing.assert_close(_ours(session), _expected(session), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", ["tiny-flux", "tiny-sd3"])
def test_the_pipeline_stage_decodes_as_diffusers_decodes(sessions, shape):
    """Unpacking (FLUX) and the VAE's scaling and shift: our pipeline stage's image is diffusers' image."""
    session = sessions(shape)
    built, loop = session.built, session.stages["denoise_loop"]
    latents = _ours(session)
    vae = built.vae.vae
    unpacked = built.family.to_vae_latents(latents, built.specs, session.plan.options.resolution)
    with torch.inference_mode():
        expected = vae.decode(unpacked / vae.config.scaling_factor + vae.config.shift_factor, return_dict=False)[0]
        ours = session.stages["pipeline"].run()
    assert unpacked.shape == (1, 4, 8, 8)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)
    assert loop.family.name in ("flux", "sd3")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("shape", "backend"),
    [
        # TorchScript export + ORT's optimizer (as "unet"); the dynamo export's graph fails ORT's shape inference.
        ("tiny-pixart", "onnxruntime"),
        # The dynamo export as it is; ORT's "mmdit" optimizer changes this tiny MMDiT's output (flagged invalid).
        ("tiny-sd3", "onnxruntime:plain"),
    ],
)
def test_onnx_runtime_runs_the_dit_and_the_mmdit_with_parity(shape, backend, tmp_path, monkeypatch):
    """Exported and run by ONNX Runtime, every stage matches eager fp32."""
    import json

    from sdshape.cli import main

    monkeypatch.setenv("SDSHAPE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out.json"
    argv = ["run", "--shape", shape, "--device", "cpu", "--steps", "2", "--rounds", "1", "--warmup", "0",
            "--backend", f"eager,{backend}", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    benchmarks = json.loads(out.read_text())["benchmarks"]
    rows = {(b["extra_info"]["backend"], b["extra_info"]["stage"]): b["extra_info"] for b in benchmarks}
    for stage in ("text_encoder", "denoise_loop", "vae_decode", "pipeline"):
        row = rows[(backend, stage)]
        assert row["status"] == "ok" and row["parity"]["ok"] and row["parity"]["rel_l2"] < 1e-5, (stage, row["parity"])
    assert rows[("eager", "denoise_loop")]["family"] == shape.removeprefix("tiny-")
