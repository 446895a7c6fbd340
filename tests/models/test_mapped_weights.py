"""Weights memory-mapped from files count in host memory only once touched.

ONNX Runtime maps external initializers from their file and copies out only those its kernels pre-pack;
a lookup table it never copies (CLIP's token embedding, 144 MiB in SD 1.5) is in memory only for the rows a
prompt uses. The SD 1.5 ONNX Runtime run on this CPU read its text encoder's true 3.75 GiB as impossible
(under 3.84 GiB of weights) until those untouched pages were measured and left out of the rule.
"""

from __future__ import annotations

import mmap
import os

import numpy as np
import pytest

from sdshape.measurement.sampling import HostSource
from sdshape.models.mapped_weights import unpaged_bytes, weight_files_in
from sdshape.result import rules

MIB = 1 << 20
GIB = 1 << 30
pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux /proc/self/smaps")


def test_untouched_pages_of_a_mapped_file_are_counted_as_unpaged(tmp_path):
    path = tmp_path / "model.onnx.data"
    path.write_bytes(b"\x01" * (32 * MIB))
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 32 * MIB, access=mmap.ACCESS_READ) as mapped:
        assert unpaged_bytes([path]) >= 31 * MIB
        touched = sum(mapped[offset] for offset in range(0, 16 * MIB, mmap.PAGESIZE))
        assert touched == 16 * MIB // mmap.PAGESIZE
        assert 15 * MIB <= unpaged_bytes([path]) <= 17 * MIB
    assert unpaged_bytes([path]) == 0  # unmapped: nothing of it is held, nothing is owed


def test_the_smaps_reading_is_capped_at_the_file_and_unknown_without_smaps(tmp_path):
    data = tmp_path / "w.data"
    data.write_bytes(b"\x00" * 8192)
    smaps = tmp_path / "smaps"
    mapping = "7f00-7f10 r--p 00000000 fe:00 12 {path}\nSize: 64 kB\nRss: 0 kB\n"
    smaps.write_text(
        mapping.format(path=data) * 2 + "7f20-7f30 r-xp 00000000 fe:00 13 /usr/lib/libc.so\nSize: 99 kB\nRss: 0 kB\n"
    )
    assert unpaged_bytes([data], smaps) == 8192  # mapped twice, 128 kB, but the file has 8 KiB
    assert unpaged_bytes([], smaps) == 0
    assert unpaged_bytes([data], tmp_path / "missing") is None


def test_weight_files_of_a_diffusers_folder(tmp_path):
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
    (tmp_path / "unet" / "config.json").write_text("{}")
    assert weight_files_in(tmp_path) == [str(tmp_path / "unet" / "diffusion_pytorch_model.safetensors")]


def test_the_host_rule_leaves_out_weights_never_paged_in():
    """The figures of that SD 1.5 text encoder row: all three ORT sessions resident, 3.84 GiB of weight
    files, the token embedding's 144 MiB never paged in, RSS 3.75 GiB over the baseline."""
    memory = {"host_rss_peak_bytes": int(3.75 * GIB), "resident_weights_bytes": int(3.843 * GIB)}
    flagged, error = rules.check_memory(memory, memory["resident_weights_bytes"], "cpu")
    assert flagged["host_rss_peak_bytes"] is None and "below the 3.84 GiB of weights" in error
    memory["weights_unpaged_bytes"] = 144 * MIB
    kept, error = rules.check_memory(memory, memory["resident_weights_bytes"], "cpu")
    assert kept["host_rss_peak_bytes"] == int(3.75 * GIB) and error is None
    memory["host_rss_peak_bytes"] = int(3.5 * GIB)  # still short of what was in memory: still flagged
    flagged, error = rules.check_memory(memory, memory["resident_weights_bytes"], "cpu")
    assert flagged["host_rss_peak_bytes"] is None and "144.00 MiB of them mapped from files" in error


@pytest.mark.parametrize("claimed", [-1, 5 * GIB, "144 MiB", 1.5e8, True])
def test_an_unpaged_figure_that_cannot_be_true_excuses_nothing(claimed):
    """A result file claiming more unpaged weights than there are weights (or no byte count at all) would
    excuse any host peak: it is nulled with the reason, and the weights rule holds in full."""
    memory = {"host_rss_peak_bytes": 1 * GIB, "weights_unpaged_bytes": claimed}
    checked, error = rules.check_memory(memory, 4 * GIB, "cpu")
    assert checked["weights_unpaged_bytes"] is None and "weights_unpaged_bytes read" in error
    assert checked["host_rss_peak_bytes"] is None and "below the 4.00 GiB of weights" in error


def test_onnx_runtime_holds_every_weight_in_memory_or_mapped_untouched(tmp_path):
    """What the rule relies on, against the real library: a session's RSS growth plus its unpaged
    weights covers its weight file, whether ONNX Runtime copies a tensor or maps it."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    table = numpy_helper.from_array(np.ones((16384, 1024), np.float32), "table")  # 64 MiB, looked up
    weight = numpy_helper.from_array(np.ones((1024, 1024), np.float32), "weight")  # 4 MiB, pre-packed
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["rows"]), helper.make_node("MatMul", ["rows", "weight"], ["y"])],
        "lookup",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 1024])],
        [table, weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "model.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="model.onnx.data", size_threshold=0)
    data = tmp_path / "model.onnx.data"
    del table, weight, graph, model
    source = HostSource()
    before = source.read()["host_rss_bytes"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    session.run(None, {"ids": np.array([0, 1, 2, 3], np.int64)})
    grown = source.read()["host_rss_bytes"] - before
    unpaged = unpaged_bytes([data])
    assert unpaged is not None
    assert grown + unpaged >= data.stat().st_size - 8 * MIB
    del session
