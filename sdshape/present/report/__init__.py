"""``sdshape report RESULTS...``: the question at a glance, as Markdown and a self-contained HTML page.

``content`` says what the report holds, once, as a list of sections;
``sections`` renders that list into Markdown and HTML; ``sdshape.present.charts``
draws the PNGs. Nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdshape.present.report.content import build
from sdshape.present.report.progress import LateProgress
from sdshape.present.report.sections import Picture, html_page, markdown
from sdshape.result.output import folder_target, make_folder, write_output


def write(
    paths: list[Any], out: Path, gpu_names: list[str] | None, catalog_file: str | None, progress: Any = None
) -> tuple[Path, Path]:
    """report.md with its PNGs beside it, and report.html with the same content self-contained; ``progress``:
    where long work shows how far it is (:class:`~sdshape.present.report.progress.LateProgress`)."""
    out = make_folder(folder_target(out, "--out"))
    progress = progress or LateProgress()
    sections = build(paths, gpu_names, catalog_file, progress)
    pictures = [section for section in sections if isinstance(section, Picture)]
    task = progress.add_task("report: writing", total=len(pictures) + 2)
    for section in pictures:
        write_output(out / section.name, section.png)
        progress.update(task, advance=1)
    markdown_path = write_output(out / "report.md", markdown(sections))
    progress.update(task, advance=1)
    html_path = write_output(out / "report.html", html_page(sections, "sdshape report"))
    progress.update(task, advance=1)
    return markdown_path, html_path
