"""``sdshape report RESULTS...``: the question at a glance, as Markdown and a self-contained HTML page.

``content`` says what the report holds, once, as a list of sections;
``sections`` renders that list into Markdown and HTML; ``charts`` draws the
PNGs. Nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdshape.present.report.content import build
from sdshape.present.report.sections import Picture, html_page, markdown
from sdshape.result.output import folder_target, make_folder, write_output


def write(paths: list[Any], out: Path, gpu_names: list[str] | None, catalog_file: str | None) -> tuple[Path, Path]:
    """report.md with its PNGs beside it, and report.html with the same content self-contained."""
    out = make_folder(folder_target(out, "--out"))
    sections = build(paths, gpu_names, catalog_file, out)
    for section in sections:
        if isinstance(section, Picture):
            write_output(out / section.name, section.png)
    markdown_path = write_output(out / "report.md", markdown(sections))
    html_path = write_output(out / "report.html", html_page(sections, "sdshape report"))
    return markdown_path, html_path
