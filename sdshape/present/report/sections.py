"""A report as one list of sections, rendered into Markdown and into one self-contained HTML page.

The report's content is built once (``sdshape.present.report.content``) from these few
kinds of section; the two renderers below are the only places that know a
format, so the Markdown and the HTML can never say different things.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Text:
    """A paragraph; `code` and **bold** are the only inline markup."""

    text: str
    note: bool = False  # rendered smaller in HTML


@dataclass
class Picture:
    name: str  # the PNG's file name beside report.md
    png: bytes
    alt: str


@dataclass
class Cell:
    text: str
    css: str | None = None  # fits | offload | no: the HTML colours a verdict


@dataclass
class Grid:
    header: list[str]
    rows: list[list[Cell]] = field(default_factory=list)


@dataclass
class Bullets:
    items: list[str]


Section = Heading | Text | Picture | Grid | Bullets


def cells(*texts: str) -> list[Cell]:
    return [Cell(text) for text in texts]


def markdown(sections: list[Section]) -> str:
    lines: list[str] = []
    for section in sections:
        if isinstance(section, Heading):
            lines += [f"{'#' * section.level} {section.text}", ""]
        elif isinstance(section, Text):
            lines += [section.text, ""]
        elif isinstance(section, Picture):
            lines += [f"![{section.alt}]({section.name})", ""]
        elif isinstance(section, Grid):
            lines.append("| " + " | ".join(section.header) + " |")
            lines.append("|---" * len(section.header) + "|")
            lines += ["| " + " | ".join(cell.text.replace("|", "\\|") for cell in row) + " |" for row in section.rows]
            lines.append("")
        elif isinstance(section, Bullets):
            lines += [f"- {item}" for item in section.items] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _inline(text: str) -> str:
    escaped = html.escape(text)
    if "`" not in text and "*" not in text:  # most table cells: no markup to look for
        return escaped
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", escaped)


def _cell(cell: Cell) -> str:
    css = f" class='{cell.css}'" if cell.css else ""
    return f"<td{css}>{_inline(cell.text)}</td>"


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px}"
    "th{background:#f3f3f3}.fits{background:#e3f6e3}.offload{background:#fff4d6}.no{background:#fbe3e3}"
    ".note{color:#555;font-size:13px}"
)


def html_page(sections: list[Section], title: str) -> str:
    """One self-contained page: pictures inline as base64 PNG, no external assets."""
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"]
    parts.append(f"<style>{STYLE}</style></head><body>")
    for section in sections:
        if isinstance(section, Heading):
            parts.append(f"<h{section.level}>{_inline(section.text)}</h{section.level}>")
        elif isinstance(section, Text):
            parts.append(f"<p{' class=note' if section.note else ''}>{_inline(section.text)}</p>")
        elif isinstance(section, Picture):
            encoded = base64.b64encode(section.png).decode()
            parts.append(f"<img alt='{html.escape(section.alt)}' src='data:image/png;base64,{encoded}'>")
        elif isinstance(section, Grid):
            head = "".join(f"<th>{_inline(text)}</th>" for text in section.header)
            body = "".join("<tr>" + "".join(_cell(cell) for cell in row) + "</tr>" for row in section.rows)
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        elif isinstance(section, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in section.items) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
