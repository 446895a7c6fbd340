"""The docs site builds with warnings as errors: a broken link or a missing page fails here, in CI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_docs_site_builds_with_warnings_as_errors(tmp_path):
    if shutil.which("mkdocs") is None and subprocess.run([sys.executable, "-m", "mkdocs", "--version"]).returncode:
        pytest.skip("mkdocs is not installed (pip install -e '.[test]' brings it)")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "static-model" / "index.html").is_file()


def test_every_docs_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert f": {page.name}" in nav, f"docs/{page.name} is not in mkdocs.yml's nav"


def test_the_install_commands_use_the_tested_versions():
    """The README's install and .ci/run resolve the versions CI tested (constraints.txt), torch excepted so
    that GPU users keep their CUDA build; a release that breaks sdshape cannot reach a fresh install."""
    root = ROOT
    readme = (root / "README.md").read_text()
    ci = (root / ".ci" / "run").read_text()
    install = next(line for line in readme.splitlines() if line.startswith("python3 -m venv"))
    assert "-c constraints.txt" in install
    assert "pip install -c constraints.txt torch==2.13.0" in ci
    pins = {}
    for line in (root / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not a pin"
            pins[name.lower()] = version
    assert "torch" not in pins
    for package in ("diffusers", "transformers", "accelerate", "sqlalchemy", "pytest-benchmark", "gguf"):
        assert package in pins, package
