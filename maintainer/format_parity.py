"""Condense the measured parity of every weight format into the figure `sdshape fit` shows beside a format
(sdshape/data/format_parity.json).

    nice -n 19 python bench/format_parity_by_shape.py    # the runs: about 20 minutes on 2 CPU cores
    python maintainer/format_parity.py                   # this: reads results/format-parity/format_parity.json

Per format: ``linear_error``, one 4096->256 Linear's relative L2 error against fp32 (the format's own
rounding, on weights of a realistic scale), which `fit` uses to choose between formats equally fast; and
``error``, the largest relative L2 error of the pipeline's image over the tiny families through
`sdshape run` (on models this small, bf16 rounding is most of it). Both with where they were measured.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEASURED = ROOT / "results" / "format-parity" / "format_parity.json"
OUT = ROOT / "sdshape" / "data" / "format_parity.json"


def condense(measured: dict) -> dict:
    formats = {}
    for name, entry in measured["formats"].items():
        images = [cell["rel_l2"]["pipeline"] for cell in entry["shapes"].values() if "rel_l2" in cell]
        ran_everywhere = len(images) == len(entry["shapes"])
        formats[name] = {
            "linear_error": entry.get("linear_rel_l2"),
            "error": max(images) if images and ran_everywhere else None,
            "source": f"bench/format_parity_by_shape.py, {measured['measured']}, {measured['machine']}: one "
            f"4096->256 Linear, and the pipeline's image on {', '.join(entry['shapes'])} (2 steps)",
        }
    return {key: measured[key] for key in ("what", "measured", "machine", "versions")} | {"formats": formats}


def main() -> int:
    document = condense(json.loads(MEASURED.read_text()))
    OUT.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
