"""A store for the dashboard's tests and screenshots: a planted series on an NVIDIA L4 whose denoising loop
steps up 20% at a driver upgrade (and whose VAE does not), beside committed result files.

Planted, not measured: the rounds are drawn from a seeded normal distribution around levels chosen here.
"""

from __future__ import annotations

import json
from pathlib import Path

from sdshape.store.db import open_store
from sdshape.store.ingest import add_file
from tests.regression.test_compare import MACHINE, rounds, row

ROOT = Path(__file__).resolve().parents[1]
DRIVERS = ["550.54.15"] * 4 + ["555.42.02"] * 4
LEVELS = [0.100, 0.101, 0.099, 0.100, 0.120, 0.121, 0.119, 0.120]  # seconds; +20% from the fifth run


def planted_files(folder: Path) -> list[Path]:
    """Eight runs of an L4, a day apart: denoise_loop steps +20% at the driver upgrade, vae_decode holds."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for index, (driver, level) in enumerate(zip(DRIVERS, LEVELS, strict=True)):
        document = {
            "machine_info": {**MACHINE, "driver_version": driver, "node": "l4-ci-1"},
            "datetime": f"2026-11-{index + 10:02d}T12:00:00",
            "benchmarks": [
                row(data=rounds(level, 0.001, 10, index)),
                row(stage="vae_decode", data=rounds(0.030, 0.0002, 10, 100 + index)),
            ],
        }
        path = folder / f"planted-l4-{index}.json"
        path.write_text(json.dumps(document))
        made.append(path)
    return made


def build_store(folder: Path, committed: tuple[str, ...] = ("results/examples/threads",)) -> Path:
    """A SQLite store holding the planted L4 runs and the committed result files under ``committed``."""
    folder.mkdir(parents=True, exist_ok=True)
    store = folder / "store.sqlite"
    engine = open_store(store, create=True)
    files = planted_files(folder / "planted")
    for name in committed:
        files += sorted((ROOT / name).glob("*.json"))
    for path in files:
        add_file(engine, path)
    engine.dispose()
    return store
