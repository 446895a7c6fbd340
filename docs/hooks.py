"""MkDocs hook: the command reference is generated from sdshape's own parser, the results schema from the
result dataclasses, the Results section from the files under results/ and the changelog page from
CHANGELOG.md, at build time, so the docs cannot drift from the flags, the keys or the measured files."""

from __future__ import annotations

import argparse
import inspect
import io
import tokenize
from dataclasses import MISSING, is_dataclass
from pathlib import Path
from typing import Any

MARKER = "<!-- generated: command reference -->"
SCHEMA_MARKER = "<!-- generated: results schema -->"


def _reference() -> str:
    from sdshape.cli.parser import build_parser

    parser = build_parser(backend_flags=True)
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = []
    for name, sub in subparsers.choices.items():
        sub.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=110)
        parts.append(f"### `sdshape {name}`\n\n```\n{sub.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


def field_comments(cls: type) -> dict[str, str]:
    """Each field's trailing ``# comment`` in the class source: the meaning the code states beside it."""
    comments: dict[str, str] = {}
    for klass in reversed([k for k in cls.__mro__ if k.__module__.startswith("sdshape")]):
        tokens = list(tokenize.generate_tokens(io.StringIO(inspect.getsource(klass)).readline))
        for index, token in enumerate(tokens):
            if token.type == tokenize.COMMENT and index > 0:
                line = token.line.strip()
                name = line.split(":", 1)[0].strip()
                if name.isidentifier() and ":" in line:
                    comments[name] = token.string.lstrip("# ").strip()
    return comments


def _default(f: Any) -> str:
    if f.default is not MISSING:
        return "null" if f.default is None else f"`{f.default!r}`"
    if f.default_factory is not MISSING:
        return "every key null" if is_dataclass(f.default_factory) else f"`{f.default_factory()!r}`"
    return "required"


def record_table(cls: type, flat: bool = False) -> str:
    """One dataclass as a table: JSON key, type, default and the meaning from its comment."""
    from sdshape.result.records import json_key, section_fields

    comments = field_comments(cls)
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for f in section_fields(cls):
        nested = f.metadata.get("record") or f.metadata.get("records")
        kind = f"[{nested.__name__}](#{nested.__name__.lower()})" if nested else f"`{f.type}`".replace("|", "\\|")
        meaning = comments.get(f.name) or f.metadata.get("help", "").replace("%%", "%")
        key = f"`{json_key(f)}`" + (f" (`{f.metadata['flag']}`)" if "flag" in f.metadata else "")
        rows.append(f"| {key} | {kind} | {_default(f)} | {meaning.replace('|', chr(92) + '|')} |")
    doc = inspect.getdoc(cls) or ""
    return f"### {cls.__name__}\n\n{doc}\n\n" + "\n".join(rows) + "\n"


def schema_reference() -> str:
    from sdshape.config.options import RunOptions
    from sdshape.regression.compare import MetricVerdict, Verdict
    from sdshape.result import model, records

    sections = [model.Conditions, model.Cost, model.Memory, model.Energy, model.Timing, model.BackendRun]
    nested = [
        records.MemoryFigures, records.Baseline, records.Parity, records.StoppingRecord, records.Residual,
        records.Kernels, records.KernelCall, records.ArtifactRecord, records.Sampler, records.Throttle, records.Clocks,
        records.VramCap, records.ReferenceWorkload, records.ReferenceFigure,
    ]  # fmt: skip
    parts = [
        "## The row: `extra_info`, flat keys by section\n",
        "Besides these: the id fields, `id` (the same as an object), `schema_version`, `rounds` (the count; "
        "the rounds are `stats.data`), `parity`, `vram_cap`, `kernels`, `reference` (the run's reference "
        "workload, absent when none was measured; records below), `status`, `message` and `host_bound`.\n",
        *(record_table(section) for section in sections),
        "## Nested records\n",
        *(record_table(record) for record in nested),
        "## The run's options: the document's `options`\n",
        record_table(RunOptions),
        "## `compare --json`: one verdict per id\n",
        record_table(Verdict),
        record_table(MetricVerdict),
    ]
    return "\n".join(parts)


def on_page_markdown(markdown: str, **_: Any) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, _reference())
    if SCHEMA_MARKER in markdown:
        markdown = markdown.replace(SCHEMA_MARKER, schema_reference())
    return markdown


ROOT = Path(__file__).resolve().parents[1]
RESULTS_NAV = "results/index.md"  # mkdocs.yml's Results entry: the hook makes it a section of every page


def _results_pages() -> list[Any]:
    from sdshape.present.results_pages import results_pages

    pages = results_pages(ROOT)
    return [pages[-1], *pages[:-1]]  # the index first


def changelog() -> str:
    """CHANGELOG.md as a docs page, its links to docs/ pages made relative to the site."""
    return (ROOT / "CHANGELOG.md").read_text().replace("](docs/", "](")


def on_config(config: Any, **_: Any) -> Any:
    """The Results entry of the nav becomes a section: the index, then one page per results folder."""
    nav = config["nav"] or []
    for index, entry in enumerate(nav):
        if isinstance(entry, dict) and entry.get("Results") == RESULTS_NAV:
            nav[index] = {"Results": [{page.title: page.path} for page in _results_pages()]}
    return config


def on_files(files: Any, config: Any, **_: Any) -> Any:
    """The generated pages: Results from the files under results/, and the changelog from CHANGELOG.md."""
    from mkdocs.structure.files import File

    for page in _results_pages():
        files.append(File.generated(config, page.path, content=page.markdown))
    files.append(File.generated(config, "changelog.md", content=changelog()))
    return files
