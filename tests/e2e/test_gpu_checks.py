"""Checks that need a CUDA GPU (``pytest -m gpu`` on a GPU machine); on the CPU each is skipped with the
reason. They are bench/checks.py's targets as tests, and the static model's fits against ``--vram-cap``.
Each writes its result files under ``$SDSHAPE_GPU_OUT`` (default: pytest's tmp dir) to be committed under
``results/<gpu>/``."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu
ROOT = Path(__file__).resolve().parents[2]


def _checks():
    spec = importlib.util.spec_from_file_location("checks", ROOT / "bench" / "checks.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture
def out(tmp_path):
    folder = Path(os.environ.get("SDSHAPE_GPU_OUT") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_the_profiled_round_costs_the_timed_rounds_at_most_1_percent(out):
    result = _checks().overhead(out, "profile", ["--profile"], ["--no-profile"])
    assert result["met"], result


def test_the_sampler_costs_the_timed_rounds_at_most_1_percent(out):
    on = ["--sample-interval", "0.02", "--no-profile"]
    result = _checks().overhead(out, "sampler", on, ["--sample-interval", "0", "--no-profile"])
    assert result["met"], result


def test_eager_cuda_graphs_within_1_3x_of_compile(out):
    result = _checks().graphs_vs_compile(out)
    assert result["met"], result


@pytest.mark.parametrize("cap", ["8GiB", "12GiB"])
def test_vram_cap_fits_agree_with_the_static_model(cap, out):
    """SDXL at 1024 px fp16, all resident under the cap: each stage's measured fit against the model's
    (all weights + that stage's traced activations, within the budget torch got: the cap minus what the
    process held, the CUDA context included)."""
    from sdshape.cli import main
    from sdshape.feasibility.formats import weight_format
    from sdshape.feasibility.static import static_shape
    from sdshape.models.zoo import get_shape

    path = out / f"sdxl-vram-cap-{cap}.json"
    argv = ["run", "--shape", "sdxl", "--device", "cuda", "--precision", "fp16", "--steps", "4", "--rounds", "3",
            "--vram-cap", cap, "--json", str(path)]  # fmt: skip
    assert main(argv) == 0
    model = static_shape(get_shape("sdxl"), 1024, 4, 1, weight_format("fp16"))
    for bench in json.loads(path.read_text())["benchmarks"]:
        info = bench["extra_info"]
        if info["stage"] == "pipeline" or not info.get("vram_cap"):
            continue
        need = model.weight_bytes + model.stages[info["stage"]].activation_peak_bytes
        budget = info["vram_cap"]["torch_budget_bytes"]
        assert (need <= budget) == info["vram_cap"]["fits"], (info["stage"], need, info["vram_cap"])
