"""How much of the weights mapped from files was never paged in.

ONNX Runtime maps external initializers from their ``.data`` file (private mappings) and copies out
only those its kernels pre-pack or reorder; diffusers maps safetensors the same way for ``--weights``. A
mapped page is in memory only once it is touched. SD 1.5's CLIP token-embedding table (144 MiB of the
text encoder's 469 MiB) stays on disk under ONNX Runtime, but for the rows a prompt looks up. Host RSS then
grows by less than the weights, and that is true: the rule that a host peak holds its resident weights
must not count those pages (it flagged that text encoder's true 3.75 GiB as impossible).

Linux only (``/proc/self/smaps``); elsewhere the figure is unknown (None) and the rule counts every byte.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

SMAPS = Path("/proc/self/smaps")
# "7fd79da39000-7fd79da3a000 rw-p 0bca8000 fe:00 2162865    /path/to/model.onnx.data"
_HEADER = re.compile(r"^[0-9a-f]+-[0-9a-f]+\s+\S+\s+\S+\s+\S+\s+\d+\s*(.*)$")


def unpaged_bytes(files: Iterable[str | Path], smaps: Path = SMAPS) -> int | None:
    """Bytes of ``files`` mapped into this process but not resident (mapped size minus RSS, per file at
    most the file's size); 0 when nothing of them is mapped, None when the mappings cannot be read."""
    wanted = {os.path.realpath(path) for path in files}
    if not wanted:
        return 0
    try:
        text = smaps.read_text()
    except OSError:
        return None
    unpaged: dict[str, int] = {}
    current: str | None = None
    size = 0
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            path = header.group(1).strip()
            current = path if path in wanted else None
            continue
        if current is None:
            continue
        if line.startswith("Size:"):
            size = int(line.split()[1]) * 1024
        elif line.startswith("Rss:"):
            unpaged[current] = unpaged.get(current, 0) + max(0, size - int(line.split()[1]) * 1024)
    return sum(min(total, _size(path)) for path, total in unpaged.items())


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def weight_files_in(folder: str | Path) -> list[str]:
    """The weight files of a diffusers folder, which its loaders map rather than read."""
    root = Path(folder)
    return sorted(str(path) for pattern in ("*.safetensors", "*.bin") for path in root.rglob(pattern))
