"""sdshape matrix input: the whole matrix checked by sdshape run's rules before Ray is imported, a cluster
address that does not answer refused in seconds, Ray's chatter kept out. No Ray cluster starts here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sdshape.cli import main
from sdshape.core.errors import UsageError
from sdshape.fleet import runner
from sdshape.fleet.jobs import load_matrix

ROOT = Path(__file__).resolve().parents[2]
HEAD = 'shapes = ["tiny"]\nbackends = ["eager"]\n'

# (matrix text, what the one line must say after the file's name)
BAD = {
    "unknown shape": ('shapes = ["tiny", "sd99"]\nbackends = ["eager"]', "shapes[1] = 'sd99': unknown shape 'sd99'"),
    "unknown backend": ('shapes = ["tiny"]\nbackends = ["eagre"]', "backends[0] = 'eagre': unknown backend 'eagre'"),
    "unknown variant": (
        'shapes = ["tiny"]\nbackends = ["eager", "onnxruntime:nope"]',
        "backends[1] = 'onnxruntime:nope': unknown onnxruntime variant 'nope'",
    ),
    "unknown precision": (HEAD + 'precisions = ["fp64"]', "precisions[0] = 'fp64': unknown precision 'fp64'"),
    "negative steps": (
        HEAD + "[[settings]]\nsteps = 2\n[[settings]]\nsteps = -3",
        "setting #2: steps = -3 (job 2: tiny eager default precision [steps=-3]): --steps must be at least 1",
    ),
    "fractional steps": (HEAD + "[[settings]]\nsteps = 2.5", "setting #1: steps = 2.5 (job 1: "),
    "steps as text": (HEAD + '[[settings]]\nsteps = "20"', "setting #1: steps = '20': must be a number"),
    "steps as a switch": (HEAD + "[[settings]]\nsteps = true", "setting #1: steps = True: must be a number"),
    "steps beyond the scheduler": (HEAD + "[[settings]]\nsteps = 1001", "steps = 1001 (job 1: "),
    "unknown device": (HEAD + '[[settings]]\ndevice = "gpu"', "device = 'gpu' (job 1: "),
    "a switch as text": (HEAD + '[[settings]]\nparity = "no"', "setting #1: parity = 'no': must be true or false"),
    "rounds neither count nor auto": (HEAD + '[[settings]]\nrounds = "many"', "rounds = 'many' (job 1: "),
    "unknown policy": (HEAD + '[[settings]]\npolicy = "none"', "policy = 'none' (job 1: "),
    "resolution not a multiple of 8": (HEAD + "[[settings]]\nresolution = 100", "resolution = 100 (job 1: "),
    "weights beside a shape": (HEAD + '[[settings]]\nweights = "/tmp"', "--weights and --shape both given"),
    "a format a backend cannot run": (
        'shapes = ["tiny"]\nbackends = ["eager", "onnxruntime"]\nprecisions = ["nf4"]',
        "job 2 (tiny onnxruntime nf4): --precision nf4 runs with --backend eager only",
    ),
    "fp16 on the CPU": (
        HEAD + 'precisions = ["fp16"]\n[[settings]]\ndevice = "cpu"',
        "setting #1 (job 1: tiny eager fp16 [device=cpu]): --precision fp16 on the CPU",
    ),
    "a graph on the CPU": (
        'shapes = ["tiny"]\nbackends = ["eager:cudagraph"]\n[[settings]]\ndevice = "cpu"',
        "eager:cudagraph needs --device cuda",
    ),
}


@pytest.fixture
def no_ray(monkeypatch):
    """Ray unimportable and the runner unreachable: a check that needed either would say so instead."""
    monkeypatch.setitem(sys.modules, "ray", None)

    def started(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(runner, "run_matrix", started)
    monkeypatch.setattr(runner, "ray_module", started)


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_a_bad_matrix_is_one_line_naming_the_file_the_entry_and_the_field_before_ray(case, tmp_path, capsys, no_ray):
    text, expected = BAD[case]
    path = tmp_path / "m.toml"
    path.write_text(text)
    out = tmp_path / "jobs"
    assert main(["matrix", str(path), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sdshape: error: {path}: "), lines
    assert expected in lines[0]
    assert captured.out == "" and not out.exists()  # nothing started, no folder made


def test_validation_imports_no_ray(tmp_path):
    """In a fresh process: a bad matrix is refused and Ray was never imported."""
    path = tmp_path / "m.toml"
    path.write_text(HEAD + "[[settings]]\nsteps = -3")
    script = (
        "import sys\nfrom sdshape.cli import main\n"
        f"code = main(['matrix', {str(path)!r}, '--out', {str(tmp_path / 'jobs')!r}])\n"
        "assert code == 2, code\nassert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "--steps must be at least 1" in done.stderr


@pytest.mark.parametrize(
    "text",
    [
        'shapes = ["tiny"]\nbackends = ["tensorrt"]',  # not installed here: the job's machine may have it
        HEAD + '[[settings]]\ndevice = "cuda"\nvram_cap = "8GiB"',  # no GPU here: the job's has one
        'shapes = ["tiny"]\nbackends = ["onnxruntime:cpu"]\nprecisions = ["fp32"]\n[[settings]]\ndevice = "cpu"',
        HEAD + 'precisions = ["nf4", "gguf-q4_0"]\n[[settings]]\nrounds = "auto"\nmax_time_s = 60',
    ],
    ids=["backend not installed here", "cuda without a GPU here", "a CPU-only variant on the CPU", "formats"],
)
def test_what_only_the_jobs_machine_can_tell_is_left_to_the_job(tmp_path, text):
    path = tmp_path / "m.toml"
    path.write_text(text)
    assert load_matrix(path)


def test_a_shape_from_a_settings_shapes_file_is_found(tmp_path):
    shapes = tmp_path / "shapes.toml"
    shapes.write_text('[shape.mine]\ntext_encoder = "tiny-clip"\ndenoiser = "tiny-unet"\nvae = "tiny-vae"\n')
    path = tmp_path / "m.toml"
    path.write_text(f'shapes = ["mine"]\nbackends = ["eager"]\n[[settings]]\nshapes_file = "{shapes}"\n')
    assert [job.shape for job in load_matrix(path)] == ["mine"]
    path.write_text(f'shapes = ["theirs"]\nbackends = ["eager"]\n[[settings]]\nshapes_file = "{shapes}"\n')
    with pytest.raises(UsageError, match=r"setting #1.*unknown shape 'theirs'"):
        load_matrix(path)


def _closed_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return free.getsockname()[1]  # closed when this returns: nothing listens there


def test_a_ray_address_where_nothing_listens_is_one_line_in_seconds(tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'sdshape[fleet]')")
    monkeypatch.setattr(runner, "run_matrix", lambda *a, **k: pytest.fail("Ray was started"))
    path = tmp_path / "m.toml"
    path.write_text(HEAD)
    port = _closed_port()
    assert main(["matrix", str(path), "--ray", f"127.0.0.1:{port}", "--out", str(tmp_path / "jobs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--ray 127.0.0.1:{port}: nothing answers at 127.0.0.1:{port} within 5 s" in err[0]


def test_an_address_that_never_answers_times_out_at_the_connect_timeout(monkeypatch):
    asked = {}

    def connect(endpoint, timeout):
        asked.update(endpoint=endpoint, timeout=timeout)
        raise TimeoutError("timed out")

    monkeypatch.setattr(runner.socket, "create_connection", connect)
    with pytest.raises(UsageError, match=r"--ray 10\.1\.2\.3:6379: nothing answers .* within 5 s \(no answer\)"):
        runner.check_reachable("10.1.2.3:6379")
    assert asked == {"endpoint": ("10.1.2.3", 6379), "timeout": runner.CONNECT_TIMEOUT_S}


@pytest.mark.parametrize(
    ("address", "endpoint"),
    [("10.0.0.5:6379", ("10.0.0.5", 6379)), ("ray://head:10002", ("head", 10002)), ("ray://head", ("head", 10001)),
     ("[::1]:6379", ("::1", 6379)), ("local", None)],
)  # fmt: skip
def test_cluster_addresses_are_read_as_ray_reads_them(address, endpoint):
    assert runner.cluster_endpoint(address) == endpoint


@pytest.mark.parametrize("address", ["head", "http://head:1", "head:port", "head:70000", "ray://"])
def test_a_malformed_address_is_one_line(address):
    with pytest.raises(UsageError, match="a cluster is host:port"):
        runner.cluster_endpoint(address)


def test_ray_address_from_the_environment_is_checked_too(monkeypatch):
    port = _closed_port()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(UsageError, match=rf"^RAY_ADDRESS=127\.0\.0\.1:{port}: nothing answers"):
        runner.check_reachable(None)


class FakeRay:
    """ray's init/shutdown as the runner calls them; init writes to file descriptor 2 as Ray's C++ core does."""

    def __init__(self, fails: bool):
        self.fails, self.calls, self.tries = fails, [], None

    def init(self, **options):
        self.calls.append(options)
        self.tries = os.environ.get("RAY_gcs_server_port_wait_time_s")  # noqa: SIM112 (Ray's own spelling)
        os.write(2, b"[W gcs_client.cc:210] Failed to get cluster ID from GCS server\n")
        if self.fails:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379")

    def shutdown(self):
        pass


def test_an_address_that_answers_without_a_ray_cluster_is_one_line_and_ray_output_is_held(capfd, monkeypatch):
    monkeypatch.delenv("RAY_gcs_server_port_wait_time_s", raising=False)
    fake = FakeRay(fails=True)
    with pytest.raises(UsageError, match=r"--ray 10\.0\.0\.5:6379: it answers, but no Ray cluster could be joined"):
        runner.start_ray(fake, {"address": "10.0.0.5:6379"})
    assert fake.tries == str(runner.GCS_TRIES) and "RAY_gcs_server_port_wait_time_s" not in os.environ
    assert capfd.readouterr().err == ""  # Ray's C++ warnings held back
    runner.start_ray(FakeRay(fails=False), {"num_gpus": 1})  # a local cluster that starts: nothing said either
    assert capfd.readouterr().err == ""


def test_ray_is_started_quietly(tmp_path, monkeypatch):
    """The runner's ray.init options: Ray's loggers at errors, workers' output kept in their logs, usage
    stats off unless the user set them; a variable the user set stays."""
    import logging

    fake = FakeRay(fails=False)

    def remote(*args, **kwargs):
        raise RuntimeError("stop here: past ray.init")

    fake.remote = remote
    monkeypatch.setattr(runner, "ray_module", lambda: fake)
    monkeypatch.delenv("RAY_USAGE_STATS_ENABLED", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    from sdshape.core.quiet import quiet_ray

    quiet_ray()
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "1")
    quiet_ray()
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "1"
    with pytest.raises(RuntimeError, match=r"past ray\.init"):
        runner.run_matrix([], tmp_path, None, 2)
    (options,) = fake.calls
    assert options["log_to_driver"] is False and options["logging_level"] == logging.ERROR
    assert options["num_gpus"] == 2 and "address" not in options
