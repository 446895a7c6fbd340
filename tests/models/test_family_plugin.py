"""A family from outside sdshape, end to end: the toy Sana family (``tests/families/sana/``, one folder) is
registered with one line, measured by ``sdshape run``, and follows diffusers' SanaPipeline stage by stage on
the same components and inputs: its text path (the complex human instruction, the select_index, the masks),
its denoising loop and its decode."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
import torch

from sdshape.models import families
from sdshape.models.families.base import reference_latents
from tests.families import sana

STEPS = 3
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def registered_sana():
    families.register(sana)  # the one line a family from outside sdshape takes
    yield sana
    families.unregister("sana")


@pytest.fixture(scope="module")
def sana_session(registered_sana):
    from sdshape.config.plan import resolve
    from sdshape.run.session import Session

    session = Session(resolve(shape="tiny-sana", device="cpu", steps=STEPS, rounds=1, warmup=0), "eager")
    session.__enter__()
    session.build()
    yield session
    session.__exit__(None, None, None)


class PromptIds:
    """A tokenizer that knows the few texts the test encodes, as the ids sdshape's text stage feeds: what
    SanaPipeline.encode_prompt needs to run its own text path on the same tokens."""

    padding_side = "right"

    def __init__(self, ids_by_text: dict[str, list[int]], pad: int):
        self.ids_by_text, self.pad = ids_by_text, pad

    def encode(self, text: str) -> list[int]:
        return self.ids_by_text[text]

    def __call__(self, texts: list[str], max_length: int, **_: object) -> types.SimpleNamespace:
        rows = [self.ids_by_text[text][:max_length] for text in texts]
        ids = torch.tensor([row + [self.pad] * (max_length - len(row)) for row in rows])
        return types.SimpleNamespace(input_ids=ids, attention_mask=(ids != self.pad).long())


def test_the_text_stage_encodes_as_sana_pipeline_encode_prompt(sana_session):
    """The complex human instruction before the prompt only, the select_index, the masks: the pipeline's."""
    from diffusers import SanaPipeline

    from sdshape.models.stages import PAD_ID

    text = sana_session.built.text_encoder
    negative, prompt = (row[row != PAD_ID].tolist() for row in sana_session.stages["text_encoder"].input_ids[0])
    instruction = text.instruction[0].tolist()
    assert len(instruction) == 12 and instruction[0] == prompt[0]  # its BOS, as Gemma's tokenizer adds one
    tokenizer = PromptIds({"": negative, "p": prompt, "c": instruction, "cp": instruction + prompt[1:]}, PAD_ID)
    pipe = SanaPipeline(tokenizer=None, text_encoder=text.encoders[0], vae=None, transformer=None, scheduler=None)
    pipe.tokenizer = tokenizer
    with torch.inference_mode():
        embeds, mask, negative_embeds, negative_mask = pipe.encode_prompt(
            "p", negative_prompt="", device=torch.device("cpu"), max_sequence_length=16, complex_human_instruction=["c"]
        )
        ours, our_mask = sana_session.stages["text_encoder"].run()
    assert ours.shape == (2, 16, 16) and our_mask.dtype == torch.long
    torch.testing.assert_close(ours, torch.cat([negative_embeds, embeds]), rtol=0, atol=0)
    torch.testing.assert_close(our_mask, torch.cat([negative_mask, mask]), rtol=0, atol=0)


def test_the_loop_and_the_decode_match_sana_pipeline(sana_session):
    built, plan = sana_session.built, sana_session.plan
    loop = sana_session.stages["denoise_loop"]
    assert type(built.vae.vae).__name__ == "AutoencoderDC" and loop.latents.shape == (1, 4, 16, 16)
    with torch.inference_mode():
        expected = reference_latents(built.family, built.modules, loop, STEPS, plan.guidance, plan.options.resolution)
        latents = loop.run()
        vae = built.vae.vae
        image = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]  # SanaPipeline's decode
        ours = sana_session.stages["pipeline"].run()
    torch.testing.assert_close(latents, expected, rtol=1e-5, atol=1e-5)
    assert image.shape == (1, 3, 32, 32)
    torch.testing.assert_close(ours, image, rtol=1e-4, atol=1e-4)


# -- end to end: `sdshape run` ----------------------------------------------------------------------------


def _rows(out) -> dict[tuple[str, str], dict]:
    benchmarks = json.loads(out.read_text())["benchmarks"]
    return {(b["extra_info"]["backend"], b["extra_info"]["stage"]): b["extra_info"] for b in benchmarks}


def test_sdshape_run_measures_the_registered_family_end_to_end(tmp_path):
    from sdshape.cli import main

    out = tmp_path / "sana.json"
    argv = ["run", "--shape", "tiny-sana", "--device", "cpu", "--steps", "2", "--rounds", "2", "--warmup", "1",
            "--no-reference", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = _rows(out)
    for stage in ("text_encoder", "denoise_loop", "vae_decode", "pipeline"):
        row = rows[("eager", stage)]
        assert row["status"] == "ok" and row["family"] == "sana", (stage, row.get("message"))
        assert row["parity"]["ok"] and row["parity"]["is_reference"]  # eager fp32 is the reference itself
        assert row["flops"] > 0
    assert rows[("eager", "denoise_loop")]["steps"] == 2


@pytest.fixture(scope="module")
def onnx_runtime_rows(tmp_path_factory) -> dict[tuple[str, str], dict]:
    """One run of the toy family by ONNX Runtime as exported (its optimizer has no type for Sana's DiT, Gemma
    or the DC-AE), beside eager fp32."""
    from sdshape.cli import main

    folder = tmp_path_factory.mktemp("sana-ort")
    out = folder / "sana.json"
    argv = ["run", "--shape", "tiny-sana", "--device", "cpu", "--steps", "2", "--rounds", "1", "--warmup", "0",
            "--backend", "eager,onnxruntime:plain", "--no-reference", "--json", str(out)]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SDSHAPE_CACHE_DIR", str(folder / "cache"))
        assert main(argv) == 0
    return _rows(out)


# Sana's linear attention (ReLU kernels, then a division by the padded row's sum plus 1e-15) exports, but
# ONNX Runtime gives NaN where eager gives finite values: in the DC-AE's attention block alone 1,904 of
# 2,048 outputs (CPU provider, onnxruntime 1.32.0, 2026-12-04), so in the DiT's loop and the decode too.
NAN_IN_ORT = pytest.mark.xfail(strict=True, reason="ORT's NaN in Sana's linear attention (not yet diagnosed)")


@pytest.mark.slow
@pytest.mark.parametrize(
    "stage",
    ["text_encoder", pytest.param("denoise_loop", marks=NAN_IN_ORT), pytest.param("vae_decode", marks=NAN_IN_ORT),
     pytest.param("pipeline", marks=NAN_IN_ORT)],
)  # fmt: skip
def test_onnx_runtime_runs_the_registered_family_with_parity(onnx_runtime_rows, stage):
    """The Gemma stage, instruction prefix and select_index included, exports and matches eager fp32."""
    row = onnx_runtime_rows[("onnxruntime:plain", stage)]
    assert row["status"] == "ok" and row["parity"]["ok"] and row["parity"]["rel_l2"] < 1e-5, (stage, row["message"])


@pytest.mark.slow
def test_an_isolated_run_registers_the_family_again_in_its_process(tmp_path):
    """``--isolate`` runs each backend in a spawned process, which starts with the built-in families only."""
    from sdshape.cli import main

    out = tmp_path / "sana.json"
    argv = ["run", "--shape", "tiny-sana", "--device", "cpu", "--steps", "2", "--rounds", "1", "--warmup", "0",
            "--isolate", "--no-reference", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = _rows(out)
    assert [rows[("eager", stage)]["status"] for stage in ("text_encoder", "denoise_loop", "vae_decode")] == ["ok"] * 3


def test_sdshape_names_no_class_of_the_toy_family():
    """One folder and one line: the shared code holds no case for Sana's DiT, its VAE or this folder."""
    sources = [*(ROOT / "sdshape").rglob("*.py"), *(ROOT / "backends").glob("*.py")]
    for needle in ("SanaTransformer2DModel", "AutoencoderDC", "tests.families"):
        assert not [p.relative_to(ROOT) for p in sources if needle in p.read_text()], needle
