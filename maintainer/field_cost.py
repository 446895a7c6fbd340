"""Write the static model's cost of every published system on the default card to sdshape/data/field_cost.json.

python maintainer/field_cost.py        # seconds with the trace cache warm; a few minutes on 2 CPU cores without it

``sdshape report``'s "quality against cost" section reads it without torch; ``sdshape inspect --all --quality``
computes the same live (and on any card with ``--gpu``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from sdshape.feasibility.catalog import load_catalog
from sdshape.feasibility.field_cost import DEFAULT_CARD, DEFAULT_PRECISION, field_costs
from sdshape.feasibility.formats import weight_format
from sdshape.feasibility.time_model import bundled_time_model
from sdshape.result.output import write_atomic

FILE = Path(__file__).resolve().parents[1] / "sdshape" / "data" / "field_cost.json"


def main() -> int:
    start = time.perf_counter()

    def progress(text: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f}s] {text}", flush=True)

    costs = field_costs(
        load_catalog()[DEFAULT_CARD], weight_format(DEFAULT_PRECISION), bundled_time_model(), progress=progress
    )
    write_atomic(FILE, json.dumps(costs, indent=1) + "\n")
    print(f"wrote {FILE} ({len(costs['systems'])} systems on {costs['card']}, {costs['precision']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
