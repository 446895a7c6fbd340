"""Feasibility: catalog validation, memory-model and projection arithmetic by hand, the report, bad input."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sdshape.cli import main
from sdshape.core.errors import UsageError
from sdshape.core.units import parse_size
from sdshape.feasibility import catalog as cat
from sdshape.feasibility import measured_fit as fz

ROOT = Path(__file__).resolve().parents[2]
SMALL_RESULTS = ROOT / "results" / "examples" / "threads" / "1-two-threads.json"
REQUIRED_GPUS = [
    "RTX 3060 12GB",
    "RTX 3080 10GB",
    "RTX 3090",
    "RTX 4060 8GB",
    "RTX 4060 Ti 16GB",
    "RTX 4070",
    "RTX 4080",
    "RTX 4090",
    "RTX 5090",
    "L4",
    "T4",
    "A100 40GB",
    "A100 80GB",
    "H100 SXM",
    "H100 PCIe",
    "H200",
]
GIB = 2**30


def test_bundled_catalog_covers_the_list_with_sources_and_sane_units():
    catalog = cat.load_catalog()
    assert set(REQUIRED_GPUS) <= set(catalog)
    for gpu in catalog.values():
        assert len(gpu.source) > 20, gpu.name
        assert 4 <= gpu.vram_gib <= 200 and 100 <= gpu.bandwidth_gbs <= 10_000, gpu.name
        assert 10 <= gpu.fp16_tflops_fp32_acc <= gpu.fp16_tflops_fp16_acc <= 5_000, gpu.name
        if gpu.name.startswith("RTX"):  # GeForce: FP32 accumulate at half rate
            assert gpu.fp16_tflops_fp32_acc == pytest.approx(gpu.fp16_tflops_fp16_acc / 2, rel=0.01), gpu.name


def test_user_catalog_adds_cards_and_rejects_malformed_ones(tmp_path):
    good = tmp_path / "mine.toml"
    good.write_text(
        '[gpu."RTX 2080 Ti"]\nvram_gib = 11\nbandwidth_gbs = 616\nfp16_tflops_fp32_acc = 56.9\n'
        'fp16_tflops_fp16_acc = 113.8\nsource = "NVIDIA Turing whitepaper, Table 1"\n'
    )
    assert cat.load_catalog(good)["RTX 2080 Ti"].vram_bytes == 11 * GIB
    fields = "bandwidth_gbs = 616\nfp16_tflops_fp32_acc = 1\nfp16_tflops_fp16_acc = 1\n"
    cases = {
        "vram_gib = 11\n" + fields: "missing source",
        "vram_gib = -11\n" + fields + 'source = "x"\n': "vram_gib must be at least 0.5 GiB, got -11",
        "vram_gib = 11\n" + fields + 'source = ""\n': "needs a source",
        "vram_gb = 11\n" + fields + 'source = "x"\n': "unknown fields ['vram_gb']",
    }
    for body, message in cases.items():
        bad = tmp_path / "bad.toml"
        bad.write_text('[gpu."Card"]\n' + body)
        with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
            cat.load_catalog(bad)
    bad.write_text("[gpu\n")
    with pytest.raises(UsageError, match="not TOML"):
        cat.load_catalog(bad)


def test_measured_names_map_to_catalog_entries():
    catalog = cat.load_catalog()
    cases = {
        "NVIDIA GeForce RTX 4090": "RTX 4090",
        "NVIDIA H100 80GB HBM3": "H100 SXM",
        "NVIDIA H100 PCIe": "H100 PCIe",
        "NVIDIA A100-SXM4-80GB": "A100 80GB",
        "NVIDIA A100-SXM4-40GB": "A100 40GB",
        "NVIDIA GeForce RTX 4060 Ti": "RTX 4060 Ti 16GB",
        "Tesla T4": "T4",
        "NVIDIA GeForce RTX 4070 Ti": None,  # not in the catalog: never a neighbour's figures
    }
    for measured, expected in cases.items():
        found = cat.match_measured(catalog, measured, None)
        assert (found.name if found else None) == expected, measured


def _run(measured_gpu=None, resolution=512, batch=1):
    cost = fz.StageCost
    stages = {
        "text_encoder": cost("text_encoder", 1 * GIB, 100 << 20, "test", 10**11, 1 * GIB, 0.010),
        "denoise_loop": cost("denoise_loop", 4 * GIB, 1 * GIB, "test", 50 * 10**12, 4 * GIB * 50, 5.0),
        "vae_decode": cost("vae_decode", 1 * GIB, 3 * GIB, "test", 5 * 10**12, 1 * GIB, 0.5),
    }
    key = {"shape": "x", "backend": "eager", "precision": "fp16", "batch": batch, "resolution": resolution, "steps": 50}
    return fz.RunProfile(key, stages, GIB // 2, "test", measured_gpu.name if measured_gpu else "CPU X", measured_gpu)


def test_memory_model_by_hand():
    run = _run(resolution=1024, batch=2)
    context = GIB // 2
    assert fz.vram_needed(run, "all_resident") == 6 * GIB + 3 * GIB + context
    assert fz.vram_needed(run, "text_encoders_dropped") == max(GIB + (100 << 20), 5 * GIB + 3 * GIB) + context
    assert fz.vram_needed(run, "model_offload") == max(GIB + (100 << 20), 5 * GIB, 4 * GIB) + context
    # Tiled at 512 px out of 1024: a quarter of the VAE activations, and sliced over a batch of 2: an eighth.
    assert fz.vram_needed(run, "vae_tiled") == max(GIB + (100 << 20), 5 * GIB, GIB + 3 * GIB // 8) + context


def test_feasibility_verdicts():
    catalog = cat.load_catalog()
    run = _run()
    assert fz.feasibility(run, catalog["H100 SXM"])["verdict"] == "fits"
    eight = fz.feasibility(run, catalog["RTX 4060 8GB"])
    # all resident 9.5 GiB, text encoders dropped max(1.1, 8) + 0.5 = 8.5 GiB: neither fits; model offload 5.5 GiB does
    assert eight["verdict"] == "needs offload" and eight["best_policy"] == "model_offload"
    small = cat.GPU("Tiny card", 2, 100, 10, 20, "test")
    assert fz.feasibility(run, small)["verdict"] == "does not fit"


def test_size_parsing():
    assert parse_size("8GiB") == parse_size("8GB") == parse_size("8 g") == 8 * GIB
    assert parse_size("8192MiB") == 8 * GIB
    for bad in ("8XB", "eight GiB", "-8GiB", "0GiB", ""):
        with pytest.raises(UsageError):
            parse_size(bad)


def test_report_from_a_committed_results_file(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(SMALL_RESULTS), "--out", str(out)]) == 0
    markdown = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    for gpu in REQUIRED_GPUS:
        assert gpu in markdown and gpu in page
    assert "## Feasibility matrix" in markdown and "model (static memory trace, calibrated roofline)" in markdown
    assert "all resident · " in markdown and "(proj.)" not in markdown  # no measured-time scaling across cards
    assert "data:image/png;base64," in page and "src='http" not in page and 'src="http' not in page
    assert (out / "shares-1.png").stat().st_size > 10_000


def test_report_includes_a_measured_shapes_exploration(tmp_path):
    shapes = ROOT / "results" / "examples" / "shapes-tiny" / "shapes.json"
    out = tmp_path / "report"
    assert main(["report", str(SMALL_RESULTS), str(shapes), "--out", str(out)]) == 0
    markdown = (out / "report.md").read_text()
    assert "## Parameter budget 5e+06: spent differently" in markdown
    assert "| unet | tiny-unet@xattn48 |" in markdown and "Composition check:" in markdown
    assert (out / "pareto-1.png").stat().st_size > 10_000
    page = (out / "report.html").read_text()
    assert "Pareto chart" in page and "<td>tiny-unet@xattn48</td>" in page and "<td>---</td>" not in page


def test_report_bad_input(tmp_path, capsys):
    assert main(["report", str(SMALL_RESULTS), "--gpus", "RTX 9999", "--out", str(tmp_path)]) == 2
    assert "unknown GPU 'RTX 9999'" in capsys.readouterr().err
    failed = tmp_path / "failed.json"
    failed.write_text(SMALL_RESULTS.read_text().replace('"status": "ok"', '"status": "oom"'))
    assert main(["report", str(failed), "--out", str(tmp_path)]) == 2
    assert "no complete run" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.json"), "--out", str(tmp_path)]) == 2


def test_vram_cap_on_the_cpu_is_a_usage_error(capsys):
    assert main(["run", "--shape", "tiny", "--device", "cpu", "--vram-cap", "8GiB"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    assert main(["run", "--shape", "tiny", "--vram-cap", "8XB"]) == 2
    assert "not a size" in capsys.readouterr().err


BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(BROWSER is None, reason="no headless browser installed (apt-get install chromium to run this)")
def test_html_renders_in_a_headless_browser(tmp_path):
    out = tmp_path / "report"
    assert main(["report", str(SMALL_RESULTS), "--out", str(out)]) == 0
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1280,2000",
            f"--screenshot={shot}",
            (out / "report.html").as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert shot.stat().st_size > 20_000  # a rendered page with tables and a chart, not a blank one


def test_measured_vram_cap_fits_appear_beside_the_model(tmp_path):
    """A capped run (here: the tiny CPU run's rows with a cap record, as a GPU run writes them) next to an
    uncapped run of the same configuration: the report sets each measured fit beside the model's need."""
    import json

    from sdshape.present.report.content import build

    document = json.loads(SMALL_RESULTS.read_text())
    for bench in document["benchmarks"]:
        info = bench["extra_info"]
        fits = info["stage"] != "vae_decode"  # as if the VAE had run out of memory under the cap
        info["vram_cap"] = {"cap_bytes": 64 << 20, "cuda_context_bytes": 0, "fits": fits}
    capped = tmp_path / "capped.json"
    capped.write_text(json.dumps(document))
    sections = build([str(SMALL_RESULTS), str(capped)], ["RTX 4060 8GB"], None)
    headings = [getattr(s, "text", "") for s in sections]
    grid = sections[headings.index("Measured under --vram-cap, beside the model") + 2]
    rows = {row[2].text: row for row in grid.rows}
    assert set(rows) == {"text_encoder", "denoise_loop", "vae_decode", "pipeline"}
    assert rows["vae_decode"][4].text == "oom" and rows["denoise_loop"][4].text == "fits"
    assert rows["denoise_loop"][5].text.endswith("MiB") and rows["denoise_loop"][6].text in ("fits", "oom")


def test_the_report_matrix_is_the_models_and_a_matching_run_replaces_its_cell(tmp_path):
    """The H100 SD 1.5 eager run (512 px, 50 steps, fp16, batch 1) is the model's sd15 row on the H100 SXM:
    the report shows the measurement there, and the model everywhere else."""
    from sdshape.feasibility.card_matrix import MATRIX_SHAPES, committed_matrix

    matrix = committed_matrix()
    assert [row["shape"] for row in matrix["rows"]] == list(MATRIX_SHAPES)
    assert {card["gpu"] for card in matrix["rows"][0]["cards"]} >= set(REQUIRED_GPUS)
    run = ROOT / "tests" / "data" / "gpu-runs" / "2026-11-22-h100" / "sd15-eager-fp16.json"
    out = tmp_path / "report"
    assert main(["report", str(run), "--out", str(out)]) == 0
    markdown = (out / "report.md").read_text()
    h100 = next(line for line in markdown.splitlines() if line.startswith("| H100 SXM |"))
    assert "measured: " in h100 and "sd15-eager-fp16.json" in h100
    l4 = next(line for line in markdown.splitlines() if line.startswith("| L4 |"))
    assert "measured" not in l4 and " s (" in l4
