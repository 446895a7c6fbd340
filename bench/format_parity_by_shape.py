"""Each weight format's error against eager fp32, per tiny shape and per stage, measured through `sdshape run`.

    nice -n 19 python bench/format_parity_by_shape.py [--docs]   # about 20 minutes on 2 CPU cores

Writes results/format-parity/format_parity.json: for every format (fp16, bf16, fp8, int8, nf4 and the four
GGUF formats) and tiny shape, each stage's relative L2 error against eager fp32 as sdshape's parity check
(sdshape.measurement.parity) reports it in the run's result file, 2 denoising steps, on the CPU. A cell that
cannot run here holds the error's last line instead of numbers. For GGUF it also records the share of the
denoiser's Linear weights stored in the format: tiny models' rows are 16 to 256 wide, so most of their layers
cannot hold 256-value K-quant blocks and stay bf16, and a K-quant figure on such a shape is mostly bf16's.

Why a run per cell rather than one process: each cell is what a user's `sdshape run --precision P` measures,
references and all. maintainer/format_parity.py condenses the same runs into the one figure per format that
`sdshape fit` reads (sdshape/data/format_parity.json); this script keeps every stage and shape.

``--docs`` rewrites the table between the format-parity markers in docs/measurement.md from the JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from store_benchmark import cpu_model  # bench/ is the script's own folder: one CPU label for every benchmark

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "format-parity" / "format_parity.json"
DOCS = ROOT / "docs" / "measurement.md"
FORMATS = ("fp16", "bf16", "fp8", "int8", "nf4", "gguf-q8_0", "gguf-q5_k", "gguf-q4_k", "gguf-q4_0")
SHAPES = ("tiny", "tiny-xl", "tiny-pixart", "tiny-sd3", "tiny-flux")
STEPS = 2
LIBRARIES = ("torch", "diffusers", "transformers", "gguf", "bitsandbytes", "torchao")


def measure(shape: str, precision: str, folder: Path) -> dict[str, Any]:
    """One `sdshape run`: each stage's relative L2 error (4 significant digits) and the stages over the format's
    tolerance, or the error that stopped it."""
    out = folder / f"{shape}-{precision}.json"
    argv = [sys.executable, "-m", "sdshape.cli", "run", "--shape", shape, "--precision", precision, "--device", "cpu",
            "--steps", str(STEPS), "--rounds", "1", "--warmup", "0", "--json", str(out)]  # fmt: skip
    env = {**os.environ, "SDSHAPE_CACHE_DIR": str(folder / "cache")}
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if not out.exists():
        return {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]}
    cell: dict[str, Any] = {"rel_l2": {}, "over_tolerance": []}
    for bench in json.loads(out.read_text())["benchmarks"]:
        info = bench["extra_info"]
        parity = info.get("parity") or {}
        if parity.get("rel_l2") is None:  # the stage stopped before its output could be compared
            cell.setdefault("errors", {})[info["stage"]] = f"{info['status']}: {info.get('message') or ''}".strip()
            continue
        cell["rel_l2"][info["stage"]] = float(f"{parity['rel_l2']:.4g}")
        if not parity.get("ok"):
            cell["over_tolerance"].append(info["stage"])
    return cell


def gguf_share(shape: str, precision: str) -> float:
    """The share of the denoiser's Linear weights a run stores in ``precision``'s blocks (the rest stays bf16)."""
    import torch
    from torch import nn

    from sdshape.models.build import build_random
    from sdshape.models.families import family_of
    from sdshape.models.quantize import logical_numel
    from sdshape.models.zoo import get_component, get_shape

    spec = get_component(get_shape(shape).components()["denoiser"])
    model = build_random(spec, torch.device("cpu"), torch.bfloat16, family=family_of(spec), storage=precision)
    linears = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    stored = sum(logical_numel(w) for w in linears if getattr(w, "quant_type", None) is not None)
    return round(stored / sum(logical_numel(w) for w in linears), 3)


def linear_error(precision: str) -> float:
    """The relative L2 error of one 4096 -> 256 Linear's output in ``precision`` against fp32 (seed 0; weights
    ~ N(0, 0.02), as trained weights are closer to normal than to PyTorch's uniform init, which NF4 is not built
    for; x ~ N(0, 1)): the format's own rounding, which the tiny models' figures mostly hide under bf16's."""
    import torch
    from torch import nn

    from sdshape.core.vocabulary import PRECISIONS
    from sdshape.models.quantize import quantize

    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Linear(4096, 256)))  # a stage wrapper holding one library model
    nn.init.normal_(model[0][0].weight, std=0.02)
    x = torch.randn(64, 4096)
    with torch.no_grad():
        reference = model(x)
        entry = PRECISIONS[precision]
        model = model.to(entry.dtype())
        if entry.storage:
            model = quantize(model, entry.storage)
        out = model(x.to(entry.dtype())).float()
    return float(f"{(torch.linalg.norm(out - reference) / torch.linalg.norm(reference)).item():.4g}")


def installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def measure_all() -> dict[str, Any]:
    from sdshape.core.vocabulary import PRECISIONS

    formats: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for precision in FORMATS:
            cells = {}
            for shape in SHAPES:
                cells[shape] = measure(shape, precision, Path(folder))
                if precision.startswith("gguf-"):
                    cells[shape]["stored_in_format"] = gguf_share(shape, precision)
                print(f"{precision:<10} {shape:<12} {json.dumps(cells[shape])}", flush=True)
            formats[precision] = {
                "tolerance_rel_l2": PRECISIONS[precision].parity_tolerance,
                "linear_rel_l2": linear_error(precision),
                "shapes": cells,
            }
    return {
        "what": "relative L2 error of each stage's output against eager fp32 (sdshape.measurement.parity), per "
        f"weight format and tiny shape; sdshape run --device cpu --steps {STEPS} --rounds 1 --warmup 0",
        "measured": datetime.date.today().isoformat(),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "system": f"{platform.system()} {platform.release()}"},
        "versions": {name: installed(name) for name in LIBRARIES},
        "linear_rel_l2": "one 4096 -> 256 Linear's output against fp32, weights ~ N(0, 0.02), x ~ N(0, 1): "
        "the format's own rounding",
        "stored_in_format": "GGUF only: the share of the denoiser's Linear weights held in the format's blocks",
        "formats": formats,
    }


def markdown(document: dict[str, Any]) -> str:
    """The docs table: per format and shape, the whole pipeline's error and the denoising loop's."""
    lines = [f"| format (tolerance) | one Linear | {' | '.join(SHAPES)} |", f"|---|---|{'---|' * len(SHAPES)}"]
    for precision, entry in document["formats"].items():
        row = []
        for shape in SHAPES:
            cell = entry["shapes"][shape]
            if "error" in cell:
                row.append("does not run on the CPU" if precision == "fp16" else "error")
                continue
            errors = cell["rel_l2"]
            text = f"{errors.get('pipeline', float('nan')):.3f} / {errors.get('denoise_loop', float('nan')):.3f}"
            if cell["over_tolerance"]:
                text += f" ✗ {', '.join(cell['over_tolerance'])}"
            if "stored_in_format" in cell:
                text += f" ({cell['stored_in_format']:.0%})"
            row.append(text)
        linear = f"{entry['linear_rel_l2']:.4f}"
        lines.append(f"| `{precision}` ({entry['tolerance_rel_l2']:g}) | {linear} | {' | '.join(row)} |")
    machine, versions = document["machine"], document["versions"]
    lines.append("")
    lines.append(
        f"One Linear: a 4096 -> 256 layer's output against fp32 (weights ~ N(0, 0.02)), the format's own rounding. "
        f"Each shape: the pipeline's image / the denoising loop, relative L2 against eager fp32; ✗ would name "
        f"stages over the tolerance; a GGUF cell's percentage is the share of the denoiser's Linear weights stored "
        f"in the format (the rest stays bf16). Measured "
        f"{document['measured']} on an {machine['cpu']} ({machine['cores']} cores), torch {versions['torch']}, "
        f"diffusers {versions['diffusers']}, gguf {versions['gguf']}, bitsandbytes {versions['bitsandbytes']}, "
        f"torchao {versions['torchao']} (`results/format-parity/format_parity.json`)."
    )
    return "\n".join(lines)


def write_docs(document: dict[str, Any]) -> None:
    text = DOCS.read_text()
    start, end = "<!-- format-parity:start -->", "<!-- format-parity:end -->"
    head, rest = text.split(start, 1)
    DOCS.write_text(f"{head}{start}\n{markdown(document)}\n{end}{rest.split(end, 1)[1]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", action="store_true", help="only rewrite the docs table from the JSON")
    args = parser.parse_args()
    if args.docs:
        write_docs(json.loads(OUT.read_text()))
        print(f"wrote the parity table in {DOCS.relative_to(ROOT)}")
        return 0
    document = measure_all()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    print(markdown(document))
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
