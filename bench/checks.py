"""Checks of the measurement itself, run as a script (not as timed tests): ``python bench/checks.py --out DIR``.

- ``rounds-auto`` (any device): ``--rounds auto`` stops by its CI criterion or a cap, and says which.
- ``profile-overhead`` (GPU): the timed rounds with and without a profiled round before them, under
  ``compile:reduce-overhead`` where rounds are stable to 1%; target: at most 1% apart.
- ``sampler-overhead`` (GPU): the same stage with the sampler thread at 20 ms and off; target: at most 1%.
- ``graphs-vs-compile`` (GPU): SD 1.5's UNet at 512 px fp16 per step under ``eager:cudagraph`` and
  ``compile:reduce-overhead``; target: eager:cudagraph at most 1.3x (the graph removes launches, fuses nothing).

Each check writes its result files and a ``checks.json`` summary under ``--out``. A GPU check on a machine
without one says so and is not run: its figure is never made up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from sdshape.cli import main as sdshape


def _run(out: Path, name: str, *argv: str) -> dict:
    path = out / f"{name}.json"
    code = sdshape(["run", *argv, "--json", str(path)])
    if code != 0:
        raise SystemExit(f"{name}: sdshape run exited {code}")
    return {
        b["extra_info"]["stage"] + "@" + b["extra_info"]["backend"]: b
        for b in json.loads(path.read_text())["benchmarks"]
    }


def rounds_auto(out: Path, device: str) -> dict:
    shape = ["--shape", "tiny", "--steps", "2"] if device == "cpu" else ["--shape", "sd15", "--steps", "20"]
    rows = _run(out, "rounds-auto", *shape, "--device", device, "--rounds", "auto", "--max-time", "20")
    return {key: row["extra_info"]["stopping"] for key, row in rows.items()}


def _median(rows: dict, key: str) -> float:
    return statistics.median(rows[key]["stats"]["data"])


def overhead(out: Path, name: str, on: list[str], off: list[str]) -> dict:
    """The same SD 1.5 UNet loop under CUDA graphs with a setting on and off; the ratio of medians."""
    common = ["--shape", "sd15", "--device", "cuda", "--backend", "compile:reduce-overhead", "--rounds", "30"]
    with_it = _run(out, f"{name}-on", *common, *on)
    without = _run(out, f"{name}-off", *common, *off)
    key = "denoise_loop@compile:reduce-overhead"
    ratio = _median(with_it, key) / _median(without, key)
    return {"ratio_on_over_off": ratio, "target": "at most 1.01", "met": ratio <= 1.01}


def graphs_vs_compile(out: Path) -> dict:
    argv = ["--shape", "sd15", "--device", "cuda", "--precision", "fp16", "--resolution", "512", "--steps", "50"]
    rows = _run(out, "graphs-vs-compile", *argv, "--backend", "eager:cudagraph,compile:reduce-overhead")
    graphs = rows["denoise_loop@eager:cudagraph"]["extra_info"]["step_times"]["rest_median_s"]
    compiled = rows["denoise_loop@compile:reduce-overhead"]["extra_info"]["step_times"]["rest_median_s"]
    ratio = graphs / compiled
    return {"eager_cudagraph_step_s": graphs, "compile_step_s": compiled, "ratio": ratio, "target": "at most 1.3",
            "met": ratio <= 1.3}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the result files and checks.json")
    parser.add_argument("--device", choices=("cuda", "cpu"), help="default: the GPU if there is one")
    args = parser.parse_args()
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"device": device, "rounds-auto": rounds_auto(out, device)}
    if device != "cuda":
        reason = "not run: needs a CUDA GPU, and none is in use"
        summary.update({"profile-overhead": reason, "sampler-overhead": reason, "graphs-vs-compile": reason})
    else:
        summary["profile-overhead"] = overhead(out, "profile", ["--profile"], ["--no-profile"])
        summary["sampler-overhead"] = overhead(
            out, "sampler", ["--sample-interval", "0.02", "--no-profile"], ["--sample-interval", "0", "--no-profile"]
        )
        summary["graphs-vs-compile"] = graphs_vs_compile(out)
    (out / "checks.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
