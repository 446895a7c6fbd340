"""sdshape matrix: the matrix file, the job registry, and a local Ray cluster declared with two GPUs
running a tiny matrix on the CPU, one process per job, every row (failures included) in the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdshape.cli import main
from sdshape.core.errors import UsageError
from sdshape.fleet.jobs import load_matrix
from sdshape.fleet.runner import Registry, failure_document, gpu_identity
from sdshape.result.io import load

MATRIX = """
shapes = ["tiny", "tiny-pixart"]
backends = ["eager"]
precisions = ["fp32"]

[[settings]]
device = "cpu"
steps = 2
rounds = 2
warmup = 0
parity = false
"""


def test_a_matrix_expands_into_jobs_with_their_run_arguments(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(MATRIX + '\n[[settings]]\ndevice = "cpu"\nsteps = 3\nprofile = false\n')
    jobs = load_matrix(path)
    assert len(jobs) == 4 and [job.index for job in jobs] == [0, 1, 2, 3]
    assert jobs[0].argv() == [
        "--shape", "tiny", "--backend", "eager", "--precision", "fp32", "--device", "cpu", "--steps", "2",
        "--rounds", "2", "--warmup", "0", "--no-parity",
    ]  # fmt: skip
    assert jobs[1].argv()[-1] == "--no-profile"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('shapes = ["tiny"]\nbackends = ["eager"]\ncolour = 1', "unknown keys ['colour']"),
        ('shapes = ["tiny"]\nbackends = []', "backends must be a non-empty list"),
        ('shapes = ["tiny"]\nbackends = ["eager"]\n[[settings]]\nstepz = 2', "unknown run option 'stepz'"),
        ('shapes = ["tiny"]\nbackends = ["eager"]\n[[settings]]\njson_path = "x"', "unknown run option 'json_path'"),
    ],
)
def test_a_bad_matrix_is_one_line(tmp_path, text, message):
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_matrix(path)


def test_neighbours_are_the_jobs_that_shared_the_host_while_a_job_ran():
    registry = Registry()
    registry.start(0, "a", {"gpu_uuid": "GPU-0"}, 0.0)
    registry.start(1, "a", {"gpu_uuid": "GPU-1"}, 1.0)
    registry.start(2, "b", {"gpu_uuid": "GPU-2"}, 1.0)  # another host
    assert [n["index"] for n in registry.end(0, "a", 0.0, 5.0)] == [1]
    registry.start(3, "a", {"gpu_uuid": "GPU-0"}, 6.0)  # after job 0 ended: not its neighbour
    assert sorted(n["index"] for n in registry.end(1, "a", 1.0, 7.0)) == [0, 3]


def test_a_declared_gpu_without_nvml_says_so():
    found = gpu_identity(0)
    assert found["ray_gpu_id"] == 0 and (found["gpu_uuid"] or "declared" in found.get("note", ""))


def test_a_dead_job_is_kept_as_error_rows_that_read_and_store(tmp_path):
    from sdshape.fleet.jobs import Job
    from sdshape.store.db import open_store
    from sdshape.store.ingest import add_file

    document = failure_document(Job(0, "tiny", "eager", "fp32", {"steps": 2}), "killed")
    path = tmp_path / "dead.json"
    path.write_text(json.dumps(document))
    rows = load(path).rows.values()
    assert {row.status for row in rows} == {"error"} and len(rows) == 4
    assert add_file(open_store(tmp_path / "s.sqlite"), path).rows == 4


@pytest.mark.slow
def test_a_local_ray_cluster_with_two_declared_gpus_runs_a_tiny_matrix_into_the_store(tmp_path, capsys):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'sdshape[fleet]')")
    path = tmp_path / "m.toml"
    # TensorRT is not installed here (nor a GPU): the matrix passes the check (the job's machine may have it),
    # and its jobs fail on this one, each kept as error rows.
    path.write_text(MATRIX.replace('backends = ["eager"]', 'backends = ["eager", "tensorrt"]'))
    store, out = tmp_path / "store.sqlite", tmp_path / "jobs"
    code = main(["matrix", str(path), "--declare-gpus", "2", "--store", str(store), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 1 and "2 of 4 jobs complete" in printed  # the two TensorRT jobs failed, the others ran
    documents = [json.loads(p.read_text()) for p in sorted(out.glob("job-*.json"))]
    assert len(documents) == 4
    jobs = [d["job"] for d in documents]
    assert {j["ray_gpu_id"] for j in jobs if j.get("ray_gpu_id") is not None} <= {0, 1}
    assert any(j["neighbours"] for j in jobs)  # two GPUs: jobs ran side by side
    ok = [d for d in documents if d["job"]["returncode"] == 0]
    assert len(ok) == 2 and all(b["extra_info"]["status"] == "ok" for d in ok for b in d["benchmarks"])
    failed = [d for d in documents if d["job"]["returncode"] != 0]
    assert all("tensorrt' is not available" in b["extra_info"]["message"] for d in failed for b in d["benchmarks"])
    from sdshape.store.db import open_store
    from sdshape.store.read import stored_files

    stored = stored_files(open_store(store, create=False))
    assert len(stored) == 4 and sum(entry["rows"] for entry in stored) == 16  # every row, failures included
    assert Path(stored[0]["path"]).parent == out.resolve()


@pytest.mark.parametrize("name", ["tiny-cpu.toml", "sd-gpu.toml"])
def test_the_committed_matrices_parse(name):
    jobs = load_matrix(Path(__file__).resolve().parents[2] / "bench" / "matrices" / name)
    assert jobs and all(job.argv()[:2] == ["--shape", job.shape] for job in jobs)


def test_a_gpu_is_named_by_its_uuid_and_throttled_stages_are_flagged(monkeypatch):
    """NVML (scripted): Ray's index 1 is looked up by NVML's index and named by its UUID."""
    import sys
    import types

    from sdshape.fleet.runner import _throttled

    fake = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda index: f"handle-{index}",
        nvmlDeviceGetUUID=lambda handle: {"handle-1": "GPU-6d3c5a2e"}[handle],
        nvmlDeviceGetName=lambda handle: "NVIDIA H200",
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert gpu_identity("1") == {"ray_gpu_id": "1", "gpu_uuid": "GPU-6d3c5a2e", "gpu_name": "NVIDIA H200"}
    document = {"benchmarks": [
        {"extra_info": {"stage": "text_encoder", "throttle": {"throttled": False, "reasons": []}}},
        {"extra_info": {"stage": "denoise_loop", "throttle": {"throttled": True, "reasons": ["sw_power_cap"]}}},
    ]}  # fmt: skip
    assert _throttled(document) == ["denoise_loop: sw_power_cap"]
