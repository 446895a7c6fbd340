"""The artifact cache: stable keys, complete-or-rebuilt entries, and ONNX export reuse."""

from __future__ import annotations

import torch

from sdshape.backends import onnx_export
from sdshape.backends.cache import ArtifactSlot, cache_key


def test_keys_are_stable_and_sensitive_to_every_part():
    parts = {"component": "abc", "inputs": [[2, 77]], "precision": "fp16", "gpu": "H100", "driver": "550.1"}
    assert cache_key(parts) == cache_key(dict(reversed(list(parts.items()))))
    for field, other in (("precision", "bf16"), ("driver", "560.0"), ("gpu", "L4"), ("inputs", [[4, 77]])):
        assert cache_key({**parts, field: other}) != cache_key(parts), field


def test_entry_is_valid_only_when_complete_and_intact(tmp_path):
    slot = ArtifactSlot(tmp_path, {"component": "x"})
    entry = slot.entry("onnx", {"onnx": "1.0"})
    assert not entry.valid()
    entry.reset()
    (entry.path("model.onnx")).write_bytes(b"graph" * 1000)
    assert not entry.valid()  # no manifest yet: a partial entry
    entry.commit(build_s=1.5)
    assert entry.valid() and entry.recorded_build_s() == 1.5
    entry.path("model.onnx").write_bytes(b"graph" * 999)  # truncated
    assert not entry.valid()
    entry.commit(build_s=1.5)
    entry.path("model.onnx").write_bytes(b"GRAPH" * 1000)  # same size, other bytes
    assert not entry.valid()
    entry.reset()
    assert list(entry.directory.iterdir()) == []


class Affine(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.linear(latents).relu()


def test_export_is_built_then_reused_then_rebuilt_when_corrupt(tmp_path):
    module = Affine().eval()
    inputs = (torch.randn(2, 8),)
    slot = ArtifactSlot(tmp_path, {"component": "affine", "inputs": [[2, 8]]})
    path, first = onnx_export.ensure_onnx(module, inputs, slot)
    assert first.cache == "built" and first.build_s > 0 and path.is_file()
    _, second = onnx_export.ensure_onnx(module, inputs, slot)
    assert second.cache == "reused" and second.build_s == 0.0 and second.cached_build_s == first.build_s
    path.write_bytes(path.read_bytes()[:100])  # a crash mid-write, say
    _, third = onnx_export.ensure_onnx(module, inputs, slot)
    assert third.cache == "built" and "corrupt" in " ".join(third.notes)
    assert onnx_export.input_names(module, 1) == ["latents"]
