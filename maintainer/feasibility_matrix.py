"""Write the static model's feasibility matrix (named shapes x catalog cards) to sdshape/data/.

python maintainer/feasibility_matrix.py            # a few minutes on 2 CPU cores the first time (traces)

Also writes the tables between the ``<!-- matrix:start -->`` markers of README.md and docs/feasibility.md.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from sdshape.feasibility.card_matrix import MATRIX_FILE, build_matrix, matrix_markdown
from sdshape.feasibility.validation import replace_between
from sdshape.result.output import write_atomic

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    start = time.perf_counter()
    matrix = build_matrix(progress=lambda text: print(f"[{time.perf_counter() - start:6.1f}s] {text}", flush=True))
    write_atomic(MATRIX_FILE, json.dumps(matrix, indent=1) + "\n")
    print(f"wrote {MATRIX_FILE} ({len(matrix['rows'])} shapes x {len(matrix['rows'][0]['cards'])} cards)")
    replace_between(ROOT / "README.md", "matrix", matrix_markdown(matrix, best_only=True))
    replace_between(ROOT / "docs" / "feasibility.md", "matrix", matrix_markdown(matrix))
    print("wrote the matrix into README.md and docs/feasibility.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
