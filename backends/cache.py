"""The artifact cache: exported ONNX files and TensorRT engines, reused across runs.

An entry lives in ``<root>/<backend>/<key>/`` where the key hashes everything
that makes an artifact valid: the component's config, the stage's input shapes
and dtypes, the precision, the backend and its options, the library versions,
the GPU and its driver. Files are written first and ``manifest.json`` last; a
reader trusts an entry only if the manifest is there and every file still has
the recorded size and fingerprint (first and last MiB hashed, so a truncated or
overwritten file is caught without hashing gigabytes). Anything else is
removed and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
_EDGE = 1 << 20


def default_root() -> Path:
    """``$SDSHAPE_CACHE_DIR``, else the user cache dir (``~/.cache/sdshape`` on Linux)."""
    env = os.environ.get("SDSHAPE_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sdshape"))


def cache_key(parts: dict[str, Any]) -> str:
    """A stable hash of the parts (key order does not matter)."""
    canonical = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def fingerprint(path: Path) -> dict[str, Any]:
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        digest.update(handle.read(_EDGE))
        if size > 2 * _EDGE:
            handle.seek(size - _EDGE)
            digest.update(handle.read(_EDGE))
    return {"size": size, "edges_sha256": digest.hexdigest()}


@dataclass
class ArtifactSlot:
    """One stage's place in the cache; the session fills ``identity``, the backend adds its own parts."""

    root: Path
    identity: dict[str, Any] = field(default_factory=dict)

    def entry(self, backend: str, parts: dict[str, Any]) -> CacheEntry:
        key = cache_key({**self.identity, "backend": backend, **parts})
        return CacheEntry(self.root / backend / key, {**self.identity, "backend": backend, **parts})


@dataclass
class CacheEntry:
    directory: Path
    parts: dict[str, Any]

    def path(self, name: str) -> Path:
        return self.directory / name

    def valid(self) -> bool:
        """True when the manifest exists and every listed file matches it."""
        manifest = self.directory / MANIFEST
        try:
            recorded = json.loads(manifest.read_text())["files"]
            return all(fingerprint(self.directory / name) == expected for name, expected in recorded.items())
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def reset(self) -> None:
        """Remove a partial or corrupt entry and make a fresh, empty directory."""
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True, exist_ok=True)

    def commit(self, build_s: float) -> None:
        """Record every file now in the entry; written last, so its presence means complete."""
        files = {p.name: fingerprint(p) for p in sorted(self.directory.iterdir()) if p.is_file() and p.name != MANIFEST}
        manifest = {"files": files, "parts": self.parts, "build_s": build_s}
        temporary = self.directory / (MANIFEST + ".tmp")
        temporary.write_text(json.dumps(manifest, indent=2, default=str))
        temporary.replace(self.directory / MANIFEST)

    def recorded_build_s(self) -> float | None:
        try:
            return float(json.loads((self.directory / MANIFEST).read_text())["build_s"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
