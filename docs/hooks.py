"""MkDocs hook: the command reference is generated from sdshape's own parser at build time, so the docs
cannot drift from the flags."""

from __future__ import annotations

import argparse
from typing import Any

MARKER = "<!-- generated: command reference -->"


def _reference() -> str:
    from sdshape.cli.parser import build_parser

    parser = build_parser(backend_flags=True)
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = []
    for name, sub in subparsers.choices.items():
        sub.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=110)
        parts.append(f"### `sdshape {name}`\n\n```\n{sub.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return markdown.replace(MARKER, _reference()) if MARKER in markdown else markdown
