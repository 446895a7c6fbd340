"""Typed results all the way down: sub-records map to JSON by their fields, and old files keep every key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdshape.result import rules
from sdshape.result.model import KNOWN_KEYS, StageResult
from sdshape.result.records import MEMORY_FIGURES, MemoryFigures, Parity, StoppingRecord

ROOT = Path(__file__).resolve().parents[2]
OLD_FILES = [
    ROOT / "tests" / "data" / "gpu-runs" / "2026-11-22-h100" / "sd15-eager-fp16.json",
    ROOT / "results" / "cpu-amd-epyc" / "2026-11-22-sd15-eager-fp32.json",
    ROOT / "results" / "examples" / "threads" / "1-two-threads.json",
]
NESTED = ("parity", "stopping", "kernels", "residual", "artifact", "sampler", "throttle", "vram_cap", "baseline")


@pytest.mark.parametrize("path", OLD_FILES, ids=lambda p: p.parent.name)
def test_a_row_read_from_an_old_file_writes_back_every_key_it_had(path):
    for entry in json.loads(path.read_text())["benchmarks"]:
        old = entry["extra_info"]
        new = StageResult.from_extra_info(dict(old), entry.get("stats")).to_extra_info()
        renamed = {"unet_loop": "denoise_loop", "unet": "denoiser"}  # schema 1's names, upgraded on read
        assert set(old) <= set(new), set(old) - set(new)
        for key in NESTED:
            if isinstance(old.get(key), dict):
                assert set(old[key]) <= set(new[key]), (key, set(old[key]) - set(new[key]))
        for key in ("params", "flops", "timer", "status", "seed", "backend_name", "energy_j"):
            assert new[key] == old[key], key
        assert new["stage"] == renamed.get(old["stage"], old["stage"])


def test_memory_figures_are_named_once():
    with pytest.raises(TypeError):
        MemoryFigures(**{"nvml_process_peek_bytes": 1})  # a misspelt figure fails where it is made
    assert set(rules.CHECKED) | set(rules.NVML_PEAKS) <= set(MEMORY_FIGURES)


def test_unknown_keys_ride_along_and_nulls_read_as_the_empty_default():
    parity = Parity.from_json({"ok": True, "rel_l2": 1e-6, "from_a_newer_sdshape": [1, 2]})
    assert parity.ok and parity.rel_l2 == 1e-6 and parity.to_json()["from_a_newer_sdshape"] == [1, 2]
    assert set(parity.to_json()) >= {"reference", "ok", "rel_l2", "max_abs", "nan", "inf", "is_reference"}
    assert StoppingRecord.from_json(None) is None


def test_the_flat_keys_are_the_sections_fields():
    assert {"energy_j", "memory", "memory_notes", "backend_name", "vram_cap", "residual", "stopping"} <= KNOWN_KEYS
    assert "rounds_s" not in KNOWN_KEYS and "stats" not in KNOWN_KEYS  # the rounds live in ``stats``
