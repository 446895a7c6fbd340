"""What makes a cached artifact valid: the component's architecture, the call, the precision, the machine.

The session asks for one :class:`~sdshape.backends.cache.ArtifactSlot` per
stage module; the backend adds its own parts (exporter or engine versions, its
options) to the slot's key.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from sdshape.backends.cache import ArtifactSlot
from sdshape.core.errors import UsageError
from sdshape.models.zoo import ComponentSpec


def config_hash(spec: ComponentSpec) -> str:
    """A hash of everything that defines a component's architecture (not its weights)."""
    described = {"class": spec.library_class, "config": spec.config, "parts": [config_hash(p) for p in spec.parts]}
    described["hidden_layer"], described["pooled"] = spec.hidden_layer, spec.pooled
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:16]


def artifact_slot(
    cache_dir: Path | None,
    fallback: Path | None,
    spec: ComponentSpec,
    kind: str,
    inputs: tuple[torch.Tensor, ...],
    precision: str,
    device: torch.device,
    environment: dict[str, Any],
) -> ArtifactSlot:
    """The cache slot of one stage module: its identity hashes everything but the backend's own parts."""
    identity = {
        "component": config_hash(spec),
        "stage_module": kind,
        "inputs": [[list(t.shape), str(t.dtype)] for t in inputs],
        "precision": precision,
        "device": device.type,
        "gpu": environment.get("gpu_name"),
        "driver": environment.get("driver_version"),
        "cuda": environment.get("cuda_runtime_version"),
        "torch": torch.__version__,
    }
    return ArtifactSlot(cache_dir, identity, fallback)


def cache_location(cache_dir: str | os.PathLike | None, notes: list[str]) -> tuple[Path, Path | None]:
    """The artifact cache, and a writable fallback when it is read-only (its valid entries still reused)."""
    from sdshape.backends.cache import default_root

    root = Path(cache_dir) if cache_dir is not None else default_root()
    if not str(root).strip() or (root.exists() and not root.is_dir()):
        raise UsageError(f"--cache-dir {cache_dir}: not a folder; give a folder for exported models and engines")
    existing = root
    while not existing.exists():
        existing = existing.parent
    if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        return root, None
    import tempfile

    fallback = Path(tempfile.gettempdir()) / f"sdshape-cache-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    notes.append(f"cache {root} is read-only: its valid entries are reused, new ones are built in {fallback}")
    return root, fallback
