"""The docs site builds with warnings as errors: a broken link or a missing page fails here, in CI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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


# Phrases that mean "the machine the author sat at": true on the day they were written, wrong for every reader.
# A figure names its machine and date instead ("the 2-core AMD EPYC VM (no GPU), 2026-12-04").
MACHINE_RELATIVE = [
    r"\bthis (?:cpu|machine|vm|host|box)\b(?!-)",  # not "this host-bound loop"
    r"\bthis project's\b",
    r"\bthe issue's\b",
    r"\b(?:measured|ran|run|runs|timed) here\b",
    r"\bon our (?:cpu|machine|vm|gpu)\b",
]


def _prose(text: str) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered from 1."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def test_user_docs_name_the_machine_instead_of_this_machine():
    """docs/*.md, README.md and CHANGELOG.md say which machine and date a figure is from, never "this CPU",
    "this project's machine" or "measured here", which a reader on another machine cannot resolve.

    Fenced code blocks are skipped: they quote commands and program output verbatim (a `--help` line such
    as "which backends run here" means the reader's own machine, and output must not be edited). Matching
    is case-insensitive; "here" alone is allowed (it mostly means "on this page")."""
    import re

    patterns = [re.compile(p, re.IGNORECASE) for p in MACHINE_RELATIVE]
    found = []
    for page in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md", ROOT / "CHANGELOG.md"]:
        for number, line in _prose(page.read_text()):
            found += [f"{page.relative_to(ROOT)}:{number}: {line.strip()}" for p in patterns if p.search(line)]
    assert not found, "machine-relative phrases (name the machine and date):\n" + "\n".join(found)


def test_the_machine_relative_check_catches_each_phrase():
    import re

    for line in ["On this CPU it took 3 s", "this project's 2-core VM", "within the issue's targets", "measured here"]:
        assert any(re.search(p, line, re.IGNORECASE) for p in MACHINE_RELATIVE), line
    assert not any(re.search(p, "the 2-core AMD EPYC VM, 2026-12-04", re.IGNORECASE) for p in MACHINE_RELATIVE)
    assert _prose("a\n```\nthis CPU\n```\nb") == [(1, "a"), (5, "b")]


def test_the_results_pages_are_generated_from_the_committed_files():
    """One page per results folder holding run results, plus the index; every table's header names a
    machine (a GPU or the CPU) and a date, and its rows are the files' own figures."""
    import re

    from sdshape.core import units
    from sdshape.present.results_pages import results_pages
    from sdshape.result.io import load

    pages = {page.path: page for page in results_pages(ROOT)}
    run_folders = set()
    for path in (ROOT / "results").rglob("*.json"):
        document = json.loads(path.read_text())
        if isinstance(document, dict) and isinstance(document.get("benchmarks"), list):
            run_folders.add(path.parent.relative_to(ROOT / "results").as_posix().replace("/", "-"))
    assert set(pages) == {f"results/{slug}.md" for slug in run_folders} | {"results/index.md"}
    assert "results/h200-aa-2026-12-04-runs.md" in pages
    headers = 0
    for page in pages.values():
        for block in page.markdown.split("\n### ")[1:]:
            header, _, body = block.partition("\n")
            assert re.search(r"\b(?:GPU|CPU) \S", header), f"{page.path}: no machine in {header!r}"
            assert re.search(r"\b20\d\d-\d\d-\d\d\b", header), f"{page.path}: no date in {header!r}"
            assert "| file | backend | stage |" in body
            headers += 1
        if page.path != "results/index.md":
            assert "\n### " in page.markdown, f"{page.path} holds no table"
    assert headers >= len(run_folders)
    h200 = pages["results/h200-aa-2026-12-04-runs.md"].markdown
    assert "GPU NVIDIA H200 (driver 580.159.04, CUDA 13.0), 2026-12-04" in h200
    loaded = load(ROOT / "results/h200-aa-2026-12-04/runs/eager-01.json")
    loop = next(row for row in loaded.rows.values() if row.stage == "denoise_loop")
    assert f"| `eager-01.json` | eager | denoise_loop | {units.seconds(loop.median)} |" in h200
    cpu = pages["results/cpu-amd-epyc.md"].markdown
    assert "CPU AMD EPYC, 2 cores, no GPU used, 2026-11-22" in cpu
