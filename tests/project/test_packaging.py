"""What the wheel holds: every package folder, found by setup.py's discovery rather than listed; backends/ as
sdshape.backends, never as a top-level ``backends``; every packaged data file."""

from __future__ import annotations

import runpy
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The folders that install, and the import name each installs as.
INSTALLED = {"sdshape": "sdshape", "backends": "sdshape.backends"}


def _setup() -> dict:
    """setup.py's names, read without building (its setup() call runs only as __main__)."""
    return runpy.run_path(str(ROOT / "setup.py"), run_name="sdshape_setup")


def _python_folders() -> dict[str, Path]:
    """Every folder under sdshape/ and backends/ that holds Python, by the name it would import as."""
    found = {}
    for top, name in INSTALLED.items():
        for source in (ROOT / top).rglob("*.py"):
            if "__pycache__" not in source.parts:
                found[".".join((name, *source.parent.relative_to(ROOT / top).parts))] = source.parent
    return found


def test_every_folder_of_python_is_a_discovered_package():
    """A folder without __init__.py, or one the discovery's patterns miss, would be left out of the wheel."""
    folders = _python_folders()
    unmarked = sorted(str(path.relative_to(ROOT)) for path in folders.values() if not (path / "__init__.py").is_file())
    assert not unmarked, f"folders of Python without __init__.py (left out of the wheel): {unmarked}"
    setup = _setup()
    assert set(setup["packages"]()) == set(folders)
    assert setup["RENAMED"] == {"sdshape.backends": "backends"}


def test_pyproject_lists_no_packages_by_hand():
    """One source for the package list: a hand list in pyproject.toml would override the discovery."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"].get("setuptools", {})
    assert "packages" not in tool and "package-dir" not in tool, "packages are found by setup.py, not listed"


def test_every_data_file_is_packaged():
    """Every file under sdshape/data/ (JSON, TOML, the vendored chart library, the dashboard's files) matches
    one of pyproject.toml's package-data patterns, so none is left out of the wheel."""
    data = ROOT / "sdshape" / "data"
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = {path for pattern in patterns["sdshape.data"] for path in data.glob(pattern) if path.is_file()}
    files = {p for p in data.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")}
    assert files - shipped == set()


def test_the_wheel_holds_every_module_and_data_file_under_sdshape(tmp_path):
    """A real wheel, built from a copy of the sources: every module at its import path, sdshape.backends from
    backends/, no top-level ``backends``, the data files beside them (about 3 s on 2 cores)."""
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in INSTALLED:
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=source, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = tmp_path.glob("sdshape-*.whl")
    held = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for top, name in INSTALLED.items():
        for path in (source / top).rglob("*"):
            relative = path.relative_to(source / top)
            if path.is_file() and (path.suffix == ".py" or (top == "sdshape" and relative.parts[0] == "data")):
                expected.add(f"{name.replace('.', '/')}/{relative.as_posix()}")
    assert expected - held == set()
    assert not [name for name in held if name.startswith("backends/")]
    assert {name.split("/")[0] for name in held} == {"sdshape", wheel.name.split("-py3")[0] + ".dist-info"}
