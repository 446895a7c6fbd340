"""The results schema's version, and one upgrade per version, applied as a row is read (asv's way).

Every row sdshape writes carries ``schema_version``. A row without one is version 1. Reading upgrades a
row step by step to the current version, so every reader sees today's names whatever wrote the file, and
``compare`` of an old file against a new one finds no difference that is only a rename. A row from a
newer sdshape than this one is refused, with the versions named.

- 1: the first files (2026-11-22 onwards): stage ``unet_loop``, kind ``unet``.
- 2: the model families (2026-12-01): stage ``denoise_loop``, kind ``denoiser``; ``vae_precision`` where the
  VAE is upcast (2026-12-03).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sdshape.core.errors import UsageError
from sdshape.core.vocabulary import current_keys, current_stage

SCHEMA_VERSION = 2


def _families(info: dict[str, Any]) -> dict[str, Any]:
    """1 -> 2: stage ``unet_loop`` is ``denoise_loop``, kind ``unet`` is ``denoiser`` (in the id, the
    component names and the build times)."""
    upgraded = dict(info)
    upgraded["stage"] = current_stage(info["stage"])
    if isinstance(info.get("id"), dict) and "stage" in info["id"]:
        upgraded["id"] = {**info["id"], "stage": current_stage(info["id"]["stage"])}
    for key in ("components", "build_s"):
        if isinstance(info.get(key), dict):
            upgraded[key] = current_keys(info[key])
    return upgraded


UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _families}


def version_of(info: dict[str, Any]) -> int:
    """The row's schema version; a usage error for a version this sdshape cannot read."""
    version = info.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UsageError(f"schema_version {version!r} is not a results schema version (1 to {SCHEMA_VERSION})")
    if version > SCHEMA_VERSION:
        raise UsageError(
            f"written by a newer sdshape (results schema {version}; this one reads 1 to {SCHEMA_VERSION}): "
            "upgrade sdshape to read it"
        )
    return version


def upgrade(info: dict[str, Any]) -> dict[str, Any]:
    """The row at the current schema version."""
    version = version_of(info)
    while version < SCHEMA_VERSION:
        info = UPGRADES[version](info)
        version += 1
    return {**info, "schema_version": SCHEMA_VERSION}
