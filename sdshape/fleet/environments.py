"""One isolated Python environment per candidate release, built with uv, for ``sdshape bisect``.

Each environment is this one frozen (every installed distribution at its installed version) with one
pin swapped: the package under test at the candidate's version. Everything else stays at the versions
of the environment bisect runs in, which is the bad side's. uv installs the frozen list with
``--no-deps``: nothing is resolved, so no other version moves, and a release whose own requirements
disagree with the frozen set still installs (it then fails or runs as it would with those versions).

Isolation: a fresh virtual environment, not ``--system-site-packages``. With the system's site-packages
visible, the swapped package's files shadow the installed ones only where both ship the same module:
a module that only the newer release has (or a namespace package's parts, or an entry point) stays
importable from the bad side, and a release that moved code between modules runs a mixture. A full
environment costs little with uv: its cache holds each wheel unpacked once, and an environment's files
are hard links into it (measured on a 2-core EPYC VM, 2026-12-04: 22 s for the first environment of 107
distributions with torch 2.13 CPU, 3.5 s and 23 MB for each further one).

sdshape itself is not installed from an index: its installed files (an editable install's finder and
``.pth``, or the package) are copied into each environment, so every candidate runs this sdshape.
Indexes and wheel folders are pip's configured ones (``pip config list``), plus any given; uv
considers every index for every package (``--index-strategy unsafe-best-match``), as pip does.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from sdshape.core.errors import UsageError

READY = ".sdshape-bisect-ready"  # written last, holding the requirements' hash: a finished environment


@dataclass(frozen=True)
class Sources:
    """Where uv looks for distributions besides its default index."""

    extra_index_urls: list[str] = field(default_factory=list)
    find_links: list[str] = field(default_factory=list)

    def arguments(self) -> list[str]:
        found = ["--index-strategy", "unsafe-best-match"]
        for url in self.extra_index_urls:
            found += ["--extra-index-url", url]
        for folder in self.find_links:
            found += ["--find-links", folder]
        return found


def pip_sources(extra_index_urls: list[str] = (), find_links: list[str] = ()) -> Sources:  # type: ignore[assignment]
    """pip's configured extra indexes and wheel folders (``pip config list``; uv does not read pip's
    configuration), then the ones given."""
    done = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False)
    indexes: list[str] = []
    folders: list[str] = []
    for line in done.stdout.splitlines():
        name, _, value = line.partition("=")
        words = value.strip().strip("'\"").split()
        if name.endswith((".extra-index-url", ".index-url")):
            indexes += [w for w in words if w not in indexes]
        elif name.endswith(".find-links"):
            folders += [w for w in words if w not in folders]
    return Sources([*indexes, *extra_index_urls], [*folders, *find_links])


def uv_binary() -> str:
    """The uv executable: on PATH, beside this Python, or from the ``uv`` package."""
    found = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if found:
        return found
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        raise UsageError("sdshape bisect needs uv: pip install uv") from None


def frozen(package: str, version: str) -> list[str]:
    """This environment's distributions as ``name==version`` lines, ``package`` at ``version``, without
    sdshape (copied in, not installed)."""
    wanted = _normal(package)
    pins: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and _normal(name) not in pins and _normal(name) not in (wanted, "sdshape"):
            pins[_normal(name)] = f"{name}=={dist.version}"
    pins[wanted] = f"{package}=={version}"
    return sorted(pins.values(), key=str.lower)


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def python_of(environment: Path) -> Path:
    return environment / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def build(
    environment: Path, package: str, version: str, sources: Sources, log: Path, cache: Path | None = None
) -> Path:
    """The environment for ``package==version`` (reused when a finished one with the same pins is
    there); its Python. A release that does not install is a :class:`UsageError` naming uv's last line."""
    pins = frozen(package, version)
    digest = hashlib.sha256("\n".join(pins).encode()).hexdigest()
    marker = environment / READY
    if marker.is_file() and marker.read_text() == digest:
        return python_of(environment)
    if environment.exists():
        shutil.rmtree(environment)
    environment.parent.mkdir(parents=True, exist_ok=True)
    requirements = environment.parent / f"{environment.name}.requirements.txt"
    requirements.write_text("\n".join(pins) + "\n")
    uv = uv_binary()
    common = ["--link-mode", "hardlink", *(["--cache-dir", str(cache)] if cache else [])]
    steps = [
        [uv, "venv", str(environment), "--python", sys.executable, "--quiet", *common[2:]],
        [uv, "pip", "install", "--python", str(python_of(environment)), "--no-deps", *common,
         *sources.arguments(), "-r", str(requirements)],
    ]  # fmt: skip
    with open(log, "a") as out:
        for step in steps:
            out.write(" ".join(step) + "\n")
            out.flush()
            done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT)
            if done.returncode != 0:
                last = (log.read_text(errors="replace").strip().splitlines() or ["(no output)"])[-1]
                raise UsageError(f"{package} {version}: the environment did not build: {last} (log: {log})")
    _copy_sdshape(environment)
    installed = subprocess.run(
        [str(python_of(environment)), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
        capture_output=True, text=True,
    )  # fmt: skip
    if installed.stdout.strip() != version:
        raise UsageError(f"{package} {version}: the environment holds {installed.stdout.strip() or 'none'} instead")
    marker.write_text(digest)
    return python_of(environment)


def _copy_sdshape(environment: Path) -> None:
    """sdshape's installed files (its dist-info, and an editable install's finder and .pth, or the
    package itself) into the environment's site-packages."""
    here = Path(sysconfig.get_paths()["purelib"]).resolve()
    installed = [
        d for d in importlib.metadata.distributions(name="sdshape") if Path(d.locate_file("")).resolve() == here
    ]
    if not installed:
        raise UsageError(f"sdshape bisect needs sdshape installed in {here} (pip install -e . in its checkout)")
    dist = installed[0]
    target = Path(
        subprocess.run(
            [str(python_of(environment)), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    for file in dist.files or []:
        source = Path(dist.locate_file(file)).resolve()
        if source.is_file() and source.is_relative_to(here) and "__pycache__" not in source.parts:
            destination = target / source.relative_to(here)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
