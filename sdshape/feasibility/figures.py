"""Published measurements (``sdshape/data/public_figures.toml``) as data, each with its conditions and source."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

KINDS = ("loop_it_s", "e2e_s", "peak_allocated_gib")
ROLES = ("calibration", "validation")


@dataclass(frozen=True)
class Figure:
    id: str
    gpu: str
    shape: str
    resolution: int
    steps: int
    kind: str
    value: float
    backend: str
    role: str
    software: str
    source: str

    @property
    def unit(self) -> str:
        return {"loop_it_s": "it/s", "e2e_s": "s/image", "peak_allocated_gib": "GiB"}[self.kind]


def public_figures() -> list[Figure]:
    text = resources.files("sdshape.data").joinpath("public_figures.toml").read_text()
    figures = [Figure(**entry) for entry in tomllib.loads(text)["figure"]]
    for figure in figures:
        if figure.kind not in KINDS or figure.role not in ROLES:
            raise ValueError(f"public_figures.toml: {figure.id}: kind {figure.kind!r} or role {figure.role!r}")
    return figures
