"""pytest-benchmark suite options and hooks.

    pytest bench/ --benchmark-json out.json [--shape sd15] [--backend eager,compile,onnxruntime]
                  [--precision fp16] [--resolution 512] [--steps 50] [--batch 1] [--device cuda]
                  [--rounds 5] [--warmup 2] [--compile-mode M] [--ort-provider P] [--cache-dir D] [--no-parity]

Defaults are those of ``sdshape run`` (they depend on whether a GPU is present).
"""

from __future__ import annotations

import pytest

from sdshape.benchsuite import SessionPool
from sdshape.document import finalize, flat_fingerprint
from sdshape.errors import UsageError
from sdshape.plan import resolve
from sdshape.vocabulary import STAGES

_pool: SessionPool | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sdshape", "sdshape stage benchmarks (same meaning and defaults as `sdshape run`)")
    group.addoption("--shape", default=None, help="zoo shape (default sd15)")
    group.addoption("--backend", default="eager", help="backend or comma list (default eager)")
    group.addoption("--precision", default=None, help="fp32|fp16|bf16")
    group.addoption("--resolution", type=int, default=None, help="image side, multiple of 8")
    group.addoption("--steps", type=int, default=None, help="denoising steps")
    group.addoption("--batch", type=int, default=1, help="images per batch")
    group.addoption("--device", default=None, help="cuda|cpu")
    group.addoption("--rounds", type=int, default=None, help="timed rounds")
    group.addoption("--warmup", type=int, default=None, help="warm-up rounds")
    group.addoption("--weights", default=None, help="local diffusers folder instead of random weights")
    group.addoption("--compile-mode", default="default", help="torch.compile mode")
    group.addoption("--ort-provider", default=None, help="onnxruntime provider: cuda|tensorrt|cpu")
    group.addoption("--cache-dir", default=None, help="artifact cache directory")
    group.addoption("--no-parity", dest="parity", action="store_false", help="skip parity with eager fp32")
    group.addoption("--vram-cap", default=None, help="GPU only: emulate a smaller card, e.g. 8GiB")
    group.addoption("--sample-interval", type=float, default=0.02, help="sampler interval in seconds (0: no thread)")


def pytest_configure(config: pytest.Config) -> None:
    global _pool
    option = config.option
    try:
        plan = resolve(
            shape=option.shape,
            backend=option.backend,
            precision=option.precision,
            device=option.device,
            resolution=option.resolution,
            steps=option.steps,
            batch=option.batch,
            rounds=option.rounds,
            warmup=option.warmup,
            weights=option.weights,
            compile_mode=option.compile_mode,
            ort_provider=option.ort_provider,
            cache_dir=option.cache_dir,
            parity=option.parity,
            vram_cap=option.vram_cap,
            sample_interval=option.sample_interval,
        )
    except UsageError as error:
        raise pytest.UsageError(str(error)) from None
    _pool = SessionPool(plan)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _pool is not None:
        _pool.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_name" in metafunc.fixturenames and _pool is not None:
        metafunc.parametrize("backend_name", _pool.ordered_backends())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Backend by backend (one resident at a time), each backend's stages in pipeline order."""
    order = {f"test_{stage}.py": index for index, stage in enumerate(STAGES)}
    backends = _pool.ordered_backends() if _pool is not None else []

    def key(item: pytest.Item) -> tuple[int, int]:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend_name") if callspec else None
        rank = backends.index(backend) if backend in backends else len(backends)
        return rank, order.get(item.path.name, len(order))

    items.sort(key=key)


@pytest.fixture(scope="session")
def pool() -> SessionPool:
    assert _pool is not None
    return _pool


@pytest.fixture
def session(pool: SessionPool, backend_name: str):
    return pool.get(backend_name)


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    if _pool is not None:
        machine_info.update(flat_fingerprint(_pool.environment))


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list, output_json: dict) -> None:
    if _pool is not None:
        output_json["benchmarks"].extend(_pool.failed_rows)
    finalize(output_json["benchmarks"])


def pytest_benchmark_compare_machine_info(
    config, benchmarksession, machine_info: dict, compared_benchmark: dict
) -> None:
    """--benchmark-compare across environments: say plainly which fingerprint fields differ."""
    from sdshape.compare import fingerprint_diff

    differences = fingerprint_diff(compared_benchmark.get("machine_info", {}), machine_info)
    if differences:
        listed = "; ".join(f"{d['field']}: {d['base']} -> {d['new']}" for d in differences)
        benchmarksession.logger.warning(
            "sdshape: this run is compared with one from a different environment, so a change may come from "
            f"the environment, not the code. Differences (saved -> current): {listed}"
        )
