"""Write the static model's feasibility matrix (named shapes x catalog cards) to sdshape/data/.

python bench/feasibility_matrix.py            # about 2 minutes on 2 CPU cores the first time (traces)
"""

from __future__ import annotations

import json
import sys
import time

from sdshape.feasibility.matrix import MATRIX_FILE, build_matrix
from sdshape.result.output import write_atomic


def main() -> int:
    start = time.perf_counter()
    matrix = build_matrix(progress=lambda text: print(f"[{time.perf_counter() - start:6.1f}s] {text}", flush=True))
    write_atomic(MATRIX_FILE, json.dumps(matrix, indent=1) + "\n")
    print(f"wrote {MATRIX_FILE} ({len(matrix['rows'])} shapes x {len(matrix['rows'][0]['cards'])} cards)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
