"""pytest-benchmark suite options and hooks.

    pytest bench/ --benchmark-json out.json [--shape sd15] [--backend eager,compile,onnxruntime] ...

The options are ``sdshape run``'s, declared once in ``sdshape.config.options`` (plus the
flags the backends declare), with the same defaults (they depend on whether a GPU is
present); only the ones that write files (--json, --save) are the CLI's alone.
"""

from __future__ import annotations

import pytest

from sdshape.config.options import BENCH, add_options
from sdshape.config.plan import plan_from
from sdshape.core.errors import UsageError
from sdshape.core.vocabulary import STAGES
from sdshape.feasibility.preflight import check_fits
from sdshape.result.fingerprint import flat_fingerprint
from sdshape.result.output import file_target, standard_json, write_or_fall_back
from sdshape.result.shares import assemble_entries
from sdshape.run.benchsuite import SessionPool

_pool: SessionPool | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sdshape", "sdshape stage benchmarks (same meaning and defaults as `sdshape run`)")
    add_options(group.addoption, BENCH)


@pytest.hookimpl(trylast=True)  # after pytest-benchmark has made its session
def pytest_configure(config: pytest.Config) -> None:
    global _pool
    try:
        target = config.getoption("benchmark_json", None)
        if target is not None:
            file_target(target, "--benchmark-json")  # checked now, not after every benchmark has run
        plan = plan_from(vars(config.option))
        check_fits(plan)  # as `sdshape run`: the static model's peak against the device's memory, up front
    except UsageError as error:
        raise pytest.UsageError(str(error)) from None
    _write_atomically(getattr(config, "_benchmarksession", None))
    _pool = SessionPool(plan)


def _write_atomically(benchmarks: object) -> None:
    """pytest-benchmark writes --benchmark-json in place; write it beside and rename instead, and fall
    back to a file whose path is printed if even that fails, so no run's results are lost."""
    if benchmarks is None or not hasattr(benchmarks, "save_json"):
        return

    def save_json(output_json: dict) -> None:
        written, why = write_or_fall_back(benchmarks.json, standard_json(output_json, indent=4))
        if why is None:
            benchmarks.logger.info(f"Wrote benchmark data in: {written}", purple=True)
        else:
            benchmarks.logger.warning(
                f"sdshape: could not write {benchmarks.json} ({why}); the results are in {written}"
            )

    benchmarks.save_json = save_json


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
        output_json["options"] = _pool.plan.resolved_options()
        _pool.stamp_reference_workload(output_json["benchmarks"])
    assemble_entries(output_json["benchmarks"])


def pytest_benchmark_compare_machine_info(
    config, benchmarksession, machine_info: dict, compared_benchmark: dict
) -> None:
    """--benchmark-compare across environments: say plainly which fingerprint fields differ."""
    from sdshape.result.fingerprint import fingerprint_diff

    differences = fingerprint_diff(compared_benchmark.get("machine_info", {}), machine_info)
    if differences:
        listed = "; ".join(f"{d['field']}: {d['base']} -> {d['new']}" for d in differences)
        benchmarksession.logger.warning(
            "sdshape: this run is compared with one from a different environment, so a change may come from "
            f"the environment, not the code. Differences (saved -> current): {listed}"
        )
