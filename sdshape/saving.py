"""``sdshape run --save``: results/<gpu-or-cpu-slug>/<date>-<shape>-<backend>-<precision>.json, never overwritten."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from sdshape.output import standard_json, write_new


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def machine_slug(machine_info: dict[str, Any]) -> str:
    if machine_info.get("gpu_name"):
        return slug(machine_info["gpu_name"])
    return slug(f"cpu {machine_info.get('cpu_model') or ''}")


def save(
    document: dict[str, Any], results_dir: Path, shape: str, backends: list[str], precision: str, text: str = ""
) -> Path:
    """Write the document (or ``text``, its JSON already made) to a fresh file.

    An existing name gets -2, -3, ... The file appears complete or not at all (written beside it,
    then linked into place), and never replaces another (the link fails if the name is taken), so
    concurrent runs each get their own."""
    folder = Path(results_dir) / machine_slug(document.get("machine_info", {}))
    folder.mkdir(parents=True, exist_ok=True)
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    stem = "-".join((date, slug(shape), "+".join(slug(b) for b in backends), precision))
    text = text or standard_json(document)
    for attempt in range(1, 10_000):
        path = folder / (f"{stem}.json" if attempt == 1 else f"{stem}-{attempt}.json")
        try:
            return write_new(path, text)
        except FileExistsError:
            continue
    raise RuntimeError(f"no free file name for {stem} in {folder}")
