"""Shared fixtures: a built tiny session is reused across tests (building costs seconds)."""

from __future__ import annotations

import os

import pytest

# Tests must never touch a GPU by accident or wait on downloads.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` run only where CUDA is usable; elsewhere they are skipped with the reason."""
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=f"needs a CUDA GPU; torch {torch.__version__} sees none")
    for item in gpu:
        item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def artifact_cache(tmp_path_factory):
    """One artifact cache for the whole test session (exports are reused across tests), never the user's."""
    root = tmp_path_factory.mktemp("sdshape-cache")
    previous = os.environ.get("SDSHAPE_CACHE_DIR")
    os.environ["SDSHAPE_CACHE_DIR"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("SDSHAPE_CACHE_DIR", None)
    else:
        os.environ["SDSHAPE_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def tiny_plan():
    from sdshape.config.plan import resolve

    return resolve(shape="tiny", device="cpu", steps=3, rounds=2, warmup=1)


@pytest.fixture(scope="session")
def tiny_session(tiny_plan):
    from sdshape.run.session import Session

    with Session(tiny_plan, "eager") as session:
        session.build()
        yield session


class WorkStarted(BaseException):
    """Raised by the ``no_work`` guard; a BaseException, so that no ``except Exception`` (a run keeps a failed
    build as a row) can swallow it."""


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if its command builds or loads a model, or reads a results file: a refusal must come
    before any work. Checked by what runs, not by the clock, so a busy machine cannot change the verdict."""
    import sdshape.models.build as build
    import sdshape.models.weights_folder as weights_folder
    import sdshape.present.report.content as report_content
    import sdshape.regression.history as history
    import sdshape.result.io as io

    def refuse(*args, **kwargs):
        raise WorkStarted("work started before the refusal")

    for module, name in (
        (build, "build_shape"),
        (build, "build_random"),
        (weights_folder, "load_weights"),
        (io, "load"),
        (history, "load"),
        (report_content, "load"),
    ):
        monkeypatch.setattr(module, name, refuse)
