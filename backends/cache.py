"""The artifact cache: exported ONNX files and TensorRT engines, reused across runs.

An entry lives in ``<root>/<backend>/<key>/`` where the key hashes everything
that makes an artifact valid: the component's config, the stage's input shapes
and dtypes, the precision, the backend and its options, the library versions,
the GPU and its driver. Files are written first and ``manifest.json`` last; a
reader trusts an entry only if the manifest is there and every file still has
the recorded size and BLAKE2b hash of its whole content (a few seconds for the
SDXL UNet's 5 GB of weights; hashing only the ends let same-size garbage in the
middle of a weights file through). Anything else is removed and rebuilt.

A read-only cache is still read: its valid entries are reused, and new ones
are built in a writable fallback folder (the plan says which).
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
_CHUNK = 8 << 20


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
    """Size and BLAKE2b of the whole file."""
    digest = hashlib.blake2b(digest_size=32)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return {"size": path.stat().st_size, "blake2b": digest.hexdigest()}


@dataclass
class ArtifactSlot:
    """One stage's place in the cache; the session fills ``identity``, the backend adds its own parts.

    ``fallback``: where new entries go when ``root`` cannot be written (its valid entries still count).
    """

    root: Path
    identity: dict[str, Any] = field(default_factory=dict)
    fallback: Path | None = None

    def entry(self, backend: str, parts: dict[str, Any]) -> CacheEntry:
        """The entry's place in the writable cache (the fallback when ``root`` is read-only)."""
        return self._at(self.fallback or self.root, backend, parts)

    def _at(self, root: Path, backend: str, parts: dict[str, Any]) -> CacheEntry:
        key = cache_key({**self.identity, "backend": backend, **parts})
        return CacheEntry(root / backend / key, {**self.identity, "backend": backend, **parts})

    def lookup(self, backend: str, parts: dict[str, Any]) -> CacheEntry | None:
        """The first valid entry, in the cache and then in the fallback; None when neither holds one."""
        roots = [self.root] + ([self.fallback] if self.fallback else [])
        for root in roots:
            found = self._at(root, backend, parts)
            if found.valid():
                return found
        return None


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

    def write_note(self, name: str, value: Any) -> None:
        """A small JSON fact about the entry (which exporter, which fusions), part of it like its files."""
        (self.directory / f"{name}.json").write_text(json.dumps(value))

    def read_note(self, name: str) -> Any:
        try:
            return json.loads((self.directory / f"{name}.json").read_text())
        except (OSError, ValueError):
            return None

    def drop(self) -> None:
        """Remove the entry (its output failed parity with NaN or Inf: it must not be reused)."""
        shutil.rmtree(self.directory, ignore_errors=True)

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
