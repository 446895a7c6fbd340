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

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sdshape.core.errors import UsageError
from sdshape.core.vocabulary import STAGES
from sdshape.fleet.jobs import Job
from sdshape.result.output import standard_json, write_atomic

INSTALL_HINT = "the Ray runner needs Ray: pip install 'sdshape[fleet]'"
CONNECT_TIMEOUT_S = 5.0  # a cluster's address must answer a TCP connect within this (Ray retries for minutes)
RAY_CLIENT_PORT = 10001  # ray:// without a port: the Ray Client server's default


def ray_module() -> Any:
    from sdshape.core.quiet import quiet_ray

    quiet_ray()  # before the import: Ray reads its environment then
    try:
        import ray
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return ray


def cluster_endpoint(address: str, label: str | None = None) -> tuple[str, int] | None:
    """The host and port ``ray.init(address=...)`` would connect to (None: it starts a local cluster);
    "auto" as Ray finds it (RAY_ADDRESS, then the cluster ``ray start`` last recorded on this machine).
    ``label``: how the user gave the address, for the messages (default ``--ray ADDRESS``)."""
    label = label or f"--ray {address}"
    form = "a cluster is host:port (e.g. 10.0.0.5:6379), ray://host[:port] or auto"
    if address == "local":
        return None
    if "://" in address:
        scheme, _, rest = address.partition("://")
        rest = rest.rstrip("/")
        if scheme != "ray" or not rest:
            raise UsageError(f"{label}: {form}")
        host, colon, port = rest.rpartition(":")
        return (host.strip("[]"), int(port)) if colon and port.isdigit() else (rest, RAY_CLIENT_PORT)
    if address == "auto":
        from ray._private import services

        try:
            address = services.canonicalize_bootstrap_address(address) or ""
        except ConnectionError:
            raise UsageError(
                f"{label}: no Ray cluster found on this machine (RAY_ADDRESS is not set and `ray start` "
                "recorded none); start one with `ray start --head` or give its address"
            ) from None
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{label}: {form}")
    return host.strip("[]"), int(port)


def check_reachable(address: str | None, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """One line, before ``ray.init``, when nothing answers at the cluster's address (``--ray``, else
    RAY_ADDRESS, which ``ray.init`` reads): Ray itself retries a dead address for minutes, printing its
    own warnings (20 tries of about 40 s each in Ray 2.60)."""
    label = f"--ray {address}" if address else f"RAY_ADDRESS={os.environ.get('RAY_ADDRESS')}"
    address = address or os.environ.get("RAY_ADDRESS") or None
    endpoint = cluster_endpoint(address, label) if address else None
    if endpoint is None:
        return
    try:
        socket.create_connection(endpoint, timeout=timeout_s).close()
    except OSError as error:
        why = "no answer" if isinstance(error, TimeoutError) else (error.strerror or str(error))
        raise UsageError(
            f"{label}: nothing answers at {endpoint[0]}:{endpoint[1]} within {timeout_s:g} s ({why}); "
            "is the cluster up (`ray start --head`) and its port open?"
        ) from None


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


GCS_TRIES = 5  # connecting to a cluster: Ray's tries to reach its GCS, about a second each (Ray's own default: 20)


@contextlib.contextmanager
def _held_stderr() -> Iterator[Any]:
    """File descriptor 2 into a temporary file while Ray starts: its C++ core logs there directly, past
    Python's logging (``gcs_client.cc: Failed to get cluster ID ...``). Yields the file."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile("w+b") as held:
        os.dup2(held.fileno(), 2)
        try:
            yield held
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def start_ray(ray: Any, options: dict[str, Any]) -> None:
    """``ray.init`` with Ray's own output held back. Connecting to a cluster (``address``): Ray tries its GCS
    GCS_TRIES times, and an address that answers but holds no Ray cluster (another service, another Ray
    version) is one line; a local cluster that fails to start shows Ray's output and its error as they are."""
    address = options.get("address")
    wait = "RAY_gcs_server_port_wait_time_s"  # read by Ray at each connect: its number of tries
    set_here = address is not None and wait not in os.environ
    if set_here:
        os.environ[wait] = str(GCS_TRIES)
    try:
        with _held_stderr() as held:
            try:
                ray.init(**options)
                return
            except Exception as error:
                failure = error
        if address is None:
            sys.stderr.write(held_text(held))
            raise failure
        ray.shutdown()
        first = (str(failure).strip().splitlines() or [type(failure).__name__])[0][:200]
        raise UsageError(f"--ray {address}: it answers, but no Ray cluster could be joined there ({first})") from None
    finally:
        if set_here:
            os.environ.pop(wait, None)


def held_text(held: Any) -> str:
    held.seek(0)
    return held.read().decode(errors="replace")


def run_matrix(
    jobs: list[Job],
    out: Path,
    address: str | None = None,
    declared_gpus: int | None = None,
    on_done: Callable[[Job, Path, dict[str, Any]], None] | None = None,
) -> list[Path]:
    """Every job on Ray, one GPU each; each finished job's document is written to ``out`` and handed to
    ``on_done`` (the store's ingest) as it arrives."""
    from sdshape.core.quiet import quiet_ray

    ray = ray_module()
    options: dict[str, Any] = {"include_dashboard": False, **quiet_ray()}
    check_reachable(address)
    if address:
        options["address"] = address
    elif declared_gpus is not None:
        options["num_gpus"] = declared_gpus
    start_ray(ray, options)
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
