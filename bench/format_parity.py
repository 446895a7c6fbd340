"""Measure how far each weight format moves each stage's output from eager fp32, on the tiny models, and
write it where `sdshape fit` reads it (sdshape/data/format_parity.json).

    python bench/format_parity.py        # about 10 minutes on 2 CPU cores

Each format runs every tiny family through `sdshape run` (the same path a user takes: parity against the
eager fp32 reference, 2 denoising steps); a format's figure is its largest relative L2 error over stages
and families, which `fit` shows beside the format it names the fastest. A format that cannot run here is
recorded with its error message, not a number.
"""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from sdshape.feasibility.validation import replace_between

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "sdshape" / "data" / "format_parity.json"
FORMATS = ("fp16", "bf16", "fp8", "int8", "nf4", "gguf-q8_0", "gguf-q5_k", "gguf-q4_k", "gguf-q4_0")
SHAPES = ("tiny", "tiny-pixart", "tiny-sd3", "tiny-flux")
STEPS = 2


def measure(shape: str, precision: str, folder: Path) -> dict[str, float] | str:
    out = folder / f"{shape}-{precision}.json"
    argv = [sys.executable, "-m", "sdshape.cli", "run", "--shape", shape, "--precision", precision, "--device", "cpu",
            "--steps", str(STEPS), "--rounds", "1", "--warmup", "0", "--json", str(out)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not out.exists():
        return (done.stderr.strip().splitlines() or ["failed"])[-1]
    errors = {}
    for bench in json.loads(out.read_text())["benchmarks"]:
        info = bench["extra_info"]
        parity = info.get("parity") or {}
        if parity.get("rel_l2") is None:  # not measured: the stage failed before its output was compared
            return f"{info['stage']}: {info['status']} {info.get('message') or ''}".strip()
        errors[info["stage"]] = parity["rel_l2"]  # an output beyond the tolerance (status invalid) still counts
    return errors


def main() -> int:
    formats = {}
    with tempfile.TemporaryDirectory() as folder:
        for precision in FORMATS:
            cells = {}
            for shape in SHAPES:
                cells[shape] = measure(shape, precision, Path(folder))
                print(f"{precision:<10} {shape:<12} {cells[shape]}", flush=True)
            numbers = [e for cell in cells.values() if isinstance(cell, dict) for e in cell.values()]
            failed = {shape: cell for shape, cell in cells.items() if isinstance(cell, str)}
            formats[precision] = {
                "error": max(numbers) if numbers and not failed else None,
                "by_shape": cells,
                "source": f"largest relative L2 error against eager fp32 over stages of {', '.join(SHAPES)}, "
                f"{STEPS} steps, on the CPU (bench/format_parity.py)",
            }
    document = {
        "what": "each weight format's relative L2 error against eager fp32, per stage, on the tiny models",
        "measured": datetime.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "versions": {p: version(p) for p in ("torch", "diffusers", "transformers", "gguf", "bitsandbytes", "torchao")},
        "formats": formats,
    }
    OUT.write_text(json.dumps(document, indent=1) + "\n")
    replace_between(ROOT / "docs" / "static-model.md", "parity", markdown(document))
    print(f"wrote {OUT} and the table in docs/static-model.md")
    return 0


def markdown(document: dict) -> str:
    """The parity table as the docs show it: per format, the largest error on each tiny family."""
    lines = ["| format | " + " | ".join(SHAPES) + " | largest |", "|---" * (len(SHAPES) + 2) + "|"]
    for name, entry in document["formats"].items():
        cells = []
        for shape in SHAPES:
            cell = entry["by_shape"][shape]
            cells.append(f"{max(cell.values()):.3f}" if isinstance(cell, dict) else "not run here")
        largest = "-" if entry["error"] is None else f"{entry['error']:.3f}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {largest} |")
    versions = ", ".join(f"{k} {v}" for k, v in document["versions"].items())
    lines.append("")
    lines.append(f"Measured {document['measured']} on {document['machine']} ({versions}). fp16 does not run on the "
                 "CPU (sdshape refuses it there).")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
