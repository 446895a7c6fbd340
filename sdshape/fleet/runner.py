"""One process per GPU, on Ray: each job is a ``sdshape run`` in its own process, pinned to one GPU.

Ray does the scheduling (tasks with ``num_gpus=1``): locally by default, on a cluster with
``--ray ADDRESS`` (``auto``: the cluster this machine belongs to). Ray sets ``CUDA_VISIBLE_DEVICES`` for
a task; the job's GPU is named by its UUID, read from NVML by that index (NVML numbers devices by PCI
order and ignores ``CUDA_VISIBLE_DEVICES``, so the index is mapped through the UUID, and the run is pinned
to the UUID itself). Each job's document records its GPU, host and neighbours (the jobs that ran on the
same host at the same time, from a small registry actor) and whether its clocks were throttled. Results
stream back as jobs finish and go into the store one file each; a job that dies leaves a document of
error rows, and the others go on.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sdshape.core.errors import UsageError
from sdshape.core.vocabulary import STAGES
from sdshape.fleet.matrix import Job
from sdshape.result.output import standard_json, write_atomic

INSTALL_HINT = "the Ray runner needs Ray: pip install 'sdshape[fleet]'"


def ray_module() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return ray


def gpu_identity(index: str | int | None) -> dict[str, Any]:
    """The GPU Ray gave a task, by NVML index, as its UUID and name (None fields without NVML)."""
    found: dict[str, Any] = {"ray_gpu_id": index, "gpu_uuid": None, "gpu_name": None}
    if index is None:
        return found
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(int(index))
            found["gpu_uuid"] = pynvml.nvmlDeviceGetUUID(handle)
            found["gpu_name"] = pynvml.nvmlDeviceGetName(handle)
        finally:
            pynvml.nvmlShutdown()
    except Exception as error:  # no NVIDIA driver (a CPU machine that declared GPUs to Ray): say so
        found["note"] = f"no NVML ({type(error).__name__}): a declared GPU, not a real one"
    return found


def failure_document(job: Job, message: str) -> dict[str, Any]:
    """A job that produced no results: one error row per stage, so the failure is kept as rows."""
    setting = job.setting
    rows = []
    for stage in STAGES:
        info = {
            "stage": stage, "shape": job.shape, "backend": job.backend, "precision": job.precision or "default",
            "batch": int(setting.get("batch", 1)), "resolution": int(setting.get("resolution", 0)),
            "steps": int(setting.get("steps", 0)), "status": "error", "message": message,
        }  # fmt: skip
        rows.append({"name": f"{stage}[{job.backend}]", "stats": None, "extra_info": info})
    return {"machine_info": {"node": socket.gethostname()}, "benchmarks": rows, "datetime": _now()}


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat()


def _throttled(document: dict[str, Any]) -> list[str]:
    stages = []
    for bench in document.get("benchmarks", []):
        throttle = (bench.get("extra_info") or {}).get("throttle") or {}
        if throttle.get("throttled"):
            stages.append(f"{bench['extra_info'].get('stage')}: {', '.join(throttle.get('reasons') or [])}")
    return stages


def run_job(job: Job, registry: Any) -> str:
    """Run one job in its own ``sdshape run`` process on the GPU Ray gave this task; its document as JSON."""
    import ray

    host = socket.gethostname()
    ids = ray.get_gpu_ids()
    gpu = gpu_identity(ids[0] if ids else None)
    started = time.time()
    ray.get(registry.start.remote(job.index, host, gpu, started))
    env = dict(os.environ)
    if gpu["gpu_uuid"]:
        env["CUDA_VISIBLE_DEVICES"] = gpu["gpu_uuid"]  # pinned by UUID, whatever the numbering
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "result.json"
        done = subprocess.run(
            [sys.executable, "-m", "sdshape.cli", "run", *job.argv(), "--json", str(path)],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        ended = time.time()
        if path.is_file():
            document = json.loads(path.read_text())
        else:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            document = failure_document(job, f"the job's process exited {done.returncode}: {tail[0]}")
    neighbours = ray.get(registry.end.remote(job.index, host, started, ended))
    document["job"] = {
        "index": job.index,
        "name": job.name,
        "argv": job.argv(),
        "host": host,
        **gpu,
        "started": started,
        "ended": ended,
        "returncode": done.returncode,
        "neighbours": neighbours,
        "throttled": _throttled(document),
    }
    return json.dumps(document)


class Registry:
    """Which job ran where and when, so each job can name the jobs that shared its host while it ran."""

    def __init__(self) -> None:
        self.jobs: dict[int, dict[str, Any]] = {}

    def start(self, index: int, host: str, gpu: dict[str, Any], when: float) -> None:
        self.jobs[index] = {"index": index, "host": host, "gpu_uuid": gpu.get("gpu_uuid"),
                            "ray_gpu_id": gpu.get("ray_gpu_id"), "started": when, "ended": None}  # fmt: skip

    def end(self, index: int, host: str, started: float, ended: float) -> list[dict[str, Any]]:
        self.jobs[index]["ended"] = ended
        return [
            {key: other[key] for key in ("index", "gpu_uuid", "ray_gpu_id")}
            for other in self.jobs.values()
            if other["index"] != index
            and other["host"] == host
            and other["started"] < ended
            and (other["ended"] is None or other["ended"] > started)
        ]


def run_matrix(
    jobs: list[Job],
    out: Path,
    address: str | None = None,
    declared_gpus: int | None = None,
    on_done: Callable[[Job, Path, dict[str, Any]], None] | None = None,
) -> list[Path]:
    """Every job on Ray, one GPU each; each finished job's document is written to ``out`` and handed to
    ``on_done`` (the store's ingest) as it arrives."""
    ray = ray_module()
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address:
        options["address"] = address
    elif declared_gpus is not None:
        options["num_gpus"] = declared_gpus
    ray.init(**options)
    try:
        registry = ray.remote(Registry).options(num_cpus=0).remote()
        task = ray.remote(num_gpus=1, max_retries=0)(run_job)
        pending = {task.remote(job, registry): job for job in jobs}
        written: list[Path] = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                document = json.loads(ray.get(ready[0]))
            except Exception as error:  # the task's worker died (killed, out of memory): an error row each
                reason = str(error).strip().splitlines()[0][:300]
                document = failure_document(job, f"the job's Ray task failed: {reason}")
                document["job"] = {"index": job.index, "name": job.name, "argv": job.argv(), "returncode": None}
            path = out / f"job-{job.index:03d}.json"
            write_atomic(path, standard_json(document))
            written.append(path)
            if on_done is not None:
                on_done(job, path, document)
        return written
    finally:
        ray.shutdown()
