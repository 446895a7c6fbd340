"""Memory figures that cannot be true are never printed: the first GPU run's defects, reproduced on the CPU.

On the H100 (tests/data/gpu-runs/2026-11-22-h100/) every peak came out negative:
the eager fp32 parity reference still held its weights when the next session read
its baseline. Here a scripted reading source replays that sequence, and the
project's own result files from that run are read back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from sdshape.present.tables import allocation_table
from sdshape.result import rules
from sdshape.result.io import load
from sdshape.result.model import StageResult
from sdshape.run import campaign, session
from sdshape.run.recording import result_of

H100 = Path(__file__).parents[1] / "data" / "gpu-runs" / "2026-11-22-h100"
GIB = 1 << 30


def test_negative_and_below_weights_figures_become_null_with_the_reason():
    memory = {
        "weights_bytes": 100,
        "nvml_process_peak_bytes": -1_516_240_896,
        "torch_reserved_peak_bytes": 2_380_267_520,
        "torch_allocated_peak_bytes": 50,  # below the 1000 bytes resident
        "torch_activation_peak_bytes": 3_784_704,
        "nvml_process_rise_bytes": -5,
        "host_rss_peak_bytes": 10,  # host memory on a GPU run: no weights rule
    }
    checked, error = rules.check_memory(memory, resident_weights=1000, device="cuda")
    assert checked["nvml_process_peak_bytes"] is None and checked["nvml_process_rise_bytes"] is None
    assert checked["torch_allocated_peak_bytes"] is None
    assert checked["torch_reserved_peak_bytes"] == 2_380_267_520
    assert checked["torch_activation_peak_bytes"] == 3_784_704 and checked["host_rss_peak_bytes"] == 10
    assert "cannot be negative" in error and "below the 1000 B of weights resident" in error
    # On the CPU, host RSS may fall short of the weights by what the C allocator reuses (64 MiB), no more:
    # SD 1.5's bf16 UNet loop read 274 MB of RSS for 2.13 GB of resident weights.
    on_cpu, cpu_error = rules.check_memory({"host_rss_peak_bytes": 274 << 20}, 2_132_471_230, device="cpu")
    assert on_cpu["host_rss_peak_bytes"] is None and "host_rss_peak_bytes" in cpu_error
    reused = 2_132_471_230 - (40 << 20)
    fine, none = rules.check_memory({"host_rss_peak_bytes": reused}, 2_132_471_230, device="cpu")
    assert fine["host_rss_peak_bytes"] == reused and none is None


def test_the_h100_files_are_read_as_flagged_not_as_numbers():
    result = load(H100 / "sd15-eager-fp16.json")
    for row in result.rows.values():
        memory = row.memory.figures
        assert memory.nvml_process_peak_bytes is None and memory.nvml_device_peak_bytes is None
        assert "cannot be negative" in row.memory.error
        assert all(v is None or v >= 0 for v in memory.figures().values())
    # torch's own peaks are valid and still stand (labelled as torch's)
    text = result.rows[next(k for k in result.rows if k[0] == "text_encoder")]
    assert text.standing_peak() == (2_380_267_520, "torch reserved", "torch_reserved_peak_bytes")


def test_an_nvml_peak_below_what_torch_itself_held_is_flagged():
    """The H100's compile:reduce-overhead rows passed the weights rule (2.76 GB over 2.13 GB of fp16
    weights) but read less than torch's own 4.76 GB reserved: NVML sees every byte the process holds."""
    result = load(H100 / "sd15-eager+onnxruntime-cuda+compile-reduce-overhead-fp16.json")
    graphs = [row for key, row in result.rows.items() if key[2] == "compile:reduce-overhead"]
    assert len(graphs) == 4
    for row in graphs:
        assert row.memory.figures.nvml_process_peak_bytes is None
        assert "below the 4.43 GiB torch's allocator itself held" in row.memory.error
    ort = [row for key, row in result.rows.items() if key[2] == "onnxruntime"]
    assert len(ort) == 4  # ORT's peaks stand: each is above the 2.25 GB torch held
    assert all(row.memory.figures.nvml_process_peak_bytes > 5e9 for row in ort)
    # A clean reading: torch's reserved at the window's end less what it held at the baseline.
    fine, none = rules.check_memory(
        {"nvml_process_peak_bytes": 3 * GIB, "torch_reserved_peak_bytes": 5 * GIB,
         "torch_reserved_end_bytes": 4 * GIB, "torch_reserved_at_baseline_bytes": 1 * GIB},
        resident_weights=2 * GIB, device="cuda",
    )  # fmt: skip
    assert fine["nvml_process_peak_bytes"] == 3 * GIB and none is None
    short, error = rules.check_memory(
        {"nvml_process_peak_bytes": 3 * GIB - (32 << 20), "torch_reserved_end_bytes": 3 * GIB},
        resident_weights=2 * GIB, device="cuda",
    )  # fmt: skip
    assert short["nvml_process_peak_bytes"] is None and "torch's allocator" in error


def test_the_h100_table_prints_flagged_instead_of_negative_peaks():
    document = json.loads((H100 / "sd15-eager-fp16.json").read_text())
    rows = [StageResult.from_extra_info(b["extra_info"], b["stats"]) for b in document["benchmarks"]]
    console = Console(record=True, width=250)
    console.print(allocation_table(rows))
    printed = console.export_text()
    assert "-1.41 GiB" not in printed and "-468" not in printed
    assert "(torch reserved)" in printed  # the valid figure, labelled with its source


def test_compare_and_report_skip_flagged_memory_saying_so(tmp_path, capsys):
    from sdshape.cli import main

    base = H100 / "sd15-eager-fp16.json"
    assert main(["compare", str(base), str(H100 / "sd15-eager-fp16-10rounds.json"), "--json"]) in (0, 1)
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 4
    for entry in results:
        memory = entry["metrics"]["memory"]
        assert memory["source"] == "torch_reserved_peak_bytes"  # NVML's negative peaks left out...
        assert any("cannot be negative" in note for note in memory["flagged"])  # ...saying so
        assert memory["base"] > 0 and memory["new"] > 0
    bench = H100 / "pytest-bench-sd15-eager-fp16.json"
    assert main(["report", str(bench), "--out", str(tmp_path / "report"), "--gpus", "RTX 4090"]) == 0
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "-1.41" not in markdown and "CUDA context: 768.00 MiB (assumed" in markdown


class ReplaySource:
    """Host-RSS readings replaying the H100 sequence: the reference's memory held, then released.

    ``held`` until ``fall`` is called (or for the first ``held_reads`` readings), then the level
    of a session at work: ``released`` plus ``working``.
    """

    def __init__(self, held: int, released: int, working: int, held_reads: int | None = None):
        self.held, self.released, self.working = held, released, working
        self.held_reads = held_reads
        self.reads = 0
        self.fallen = False

    def fall(self) -> None:
        self.fallen = True

    def read(self) -> dict:
        self.reads += 1
        if self.held_reads is not None and self.reads > self.held_reads:
            self.fallen = True
        if not self.fallen:
            return {"host_rss_bytes": self.held}
        first_after = self.held_reads is not None and self.reads == self.held_reads + 1
        return {"host_rss_bytes": self.released if first_after else self.released + self.working}

    def energy_mj(self) -> None:
        return None


@pytest.fixture
def replay(monkeypatch):
    def install(source: ReplaySource, timeout_s: float = session.SETTLE_TIMEOUT_S):
        monkeypatch.setattr(session, "reading_source", lambda device: (source, None, "replayed readings"))
        monkeypatch.setattr(campaign, "reading_source", lambda device: (source, None, "replayed readings"))
        monkeypatch.setattr(session, "SETTLE_TIMEOUT_S", timeout_s)
        return source

    return install


def _measured_denoise_loop(plan, previous_level: int, previous_weights: int):
    run = campaign.Campaign(plan)
    run._level, run._weights = {"host_rss_bytes": previous_level}, previous_weights
    return run, run.open("eager")


def test_a_baseline_read_before_memory_falls_is_waited_for(replay, tiny_plan):
    """The reference's 4 GiB are still held for three readings: the baseline waits for the fall."""
    held = ReplaySource(held=int(4.5 * GIB), released=GIB // 2, working=int(2.2 * GIB), held_reads=3)
    source = replay(held, timeout_s=60.0)
    run, opened = _measured_denoise_loop(tiny_plan, GIB // 2, 4 * GIB)
    try:
        assert opened.settled.settled and opened.sampler.baseline == {"host_rss_bytes": GIB // 2}
        opened.build()
        result = result_of(opened.plan, opened.measure("denoise_loop"))
    finally:
        run.close(opened)
    assert source.reads > 4
    assert result.memory.error is None
    assert result.memory.figures.host_rss_peak_bytes == int(2.2 * GIB)
    assert result.memory.baseline.settled and result.memory.baseline.waited_s > 0


def test_a_baseline_that_never_came_down_flags_the_peaks(replay, tiny_plan):
    """As on the H100: the baseline is read high, memory falls afterwards, the peaks would be negative."""
    source = replay(ReplaySource(held=int(4.5 * GIB), released=GIB // 2, working=int(2.2 * GIB)), timeout_s=0.3)
    run, opened = _measured_denoise_loop(tiny_plan, GIB // 2, 4 * GIB)
    try:
        assert not opened.settled.settled
        source.fall()  # the reference's memory goes only now, after the baseline was read
        opened.build()
        result = result_of(opened.plan, opened.measure("denoise_loop"))
    finally:
        run.close(opened)
    assert result.memory.figures.host_rss_peak_bytes is None
    assert "baseline was read while" in result.memory.error
    info = result.to_extra_info()  # as written: null, with the reason
    assert info["memory"]["host_rss_peak_bytes"] is None and info["memory_error"] == result.memory.error
    console = Console(record=True, width=250)
    console.print(allocation_table([result]))
    printed = console.export_text()
    assert "flagged" in printed and "-1.80 GiB" not in printed


@pytest.mark.slow
def test_sd15_bf16_on_the_cpu_holds_its_weights(tmp_path):
    """The CPU case of the GPU defect: the fp32 reference (4.26 GB) was freed after the bf16 session's
    baseline was read, and the UNet loop reported 274 MB of host RSS for 1.72 GB of bf16 weights."""
    from sdshape.cli import main

    out = tmp_path / "bf16.json"
    argv = ["run", "--shape", "sd15", "--device", "cpu", "--precision", "bf16", "--resolution", "64"]
    assert main([*argv, "--steps", "1", "--rounds", "1", "--warmup", "0", "--json", str(out)]) == 0
    rows = {b["extra_info"]["stage"]: b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]}
    loop = rows["denoise_loop"]
    assert loop["memory_error"] is None
    assert loop["memory"]["host_rss_peak_bytes"] >= loop["memory"]["weights_bytes"] == 1_719_041_928
    for info in rows.values():
        assert info["memory"]["host_rss_peak_bytes"] >= info["memory"]["resident_weights_bytes"] == 2_132_471_230
