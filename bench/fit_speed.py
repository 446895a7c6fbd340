"""How long `sdshape fit` takes to answer, as a user waits for it: a whole process, the trace cache warm.

    python bench/fit_speed.py [--runs 3]

Fills a fresh trace cache once per shape (the cold answer, printed), then times each command --runs times
and prints the median and range. The target: under 5 s warm.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = (
    ["fit", "sd15"],
    ["fit", "sdxl"],
    ["fit", "flux-dev", "--gpu", "RTX 4060 Ti 16GB"],
    ["fit", "sd35-large", "--gpu", "RTX 4090", "--precision", "gguf-q4_k"],
)


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sdshape.cli", *argv], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "SDSHAPE_CACHE_DIR": cache}
        for argv in COMMANDS:
            cold = timed(argv, env)
            warm = [timed(argv, env) for _ in range(args.runs)]
            print(f"sdshape {' '.join(argv):<62} cold {cold:6.1f} s   warm median {statistics.median(warm):4.1f} s "
                  f"({min(warm):.1f}-{max(warm):.1f})", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
