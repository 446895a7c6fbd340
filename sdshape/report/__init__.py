"""``sdshape report RESULTS...``: the question at a glance, as Markdown and a self-contained HTML page.

``content`` says what the report holds, once, as a list of sections;
``sections`` renders that list into Markdown and HTML; ``charts`` draws the
PNGs. Nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path

from sdshape.report.content import build
from sdshape.report.sections import Picture, html_page, markdown


def write(paths: list[str], out: Path, gpu_names: list[str] | None, catalog_file: str | None) -> tuple[Path, Path]:
    """report.md with its PNGs beside it, and report.html with the same content self-contained."""
    out.mkdir(parents=True, exist_ok=True)
    sections = build(paths, gpu_names, catalog_file, out)
    for section in sections:
        if isinstance(section, Picture):
            (out / section.name).write_bytes(section.png)
    markdown_path, html_path = out / "report.md", out / "report.html"
    markdown_path.write_text(markdown(sections))
    html_path.write_text(html_page(sections, "sdshape report"))
    return markdown_path, html_path
