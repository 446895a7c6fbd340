"""``sdshape matrix MATRIX.toml``: shapes x backends x precisions x settings, expanded into jobs.

    shapes = ["sd15", "sdxl"]
    backends = ["eager", "compile:reduce-overhead"]
    precisions = ["fp16"]

    [[settings]]            # each table is one setting; none: one empty setting
    steps = 20
    rounds = "auto"

    [[settings]]
    steps = 50

A setting names run options as ``sdshape run`` does (``RunOptions`` fields: ``steps``, ``rounds``,
``device``, ``vram_cap``, ...); each job is one ``sdshape run`` with its own JSON file.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sdshape.config.options import RUN, RunOptions
from sdshape.core.errors import UsageError

AXES = {"shapes": "shape", "backends": "backend", "precisions": "precision"}
NOT_A_SETTING = {"shape", "backend", "precision", "json_path", "save", "results_dir", "store", "isolate"}


@dataclass(frozen=True)
class Job:
    index: int
    shape: str
    backend: str
    precision: str | None
    setting: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        extra = ",".join(f"{key}={value}" for key, value in sorted(self.setting.items()))
        return f"{self.shape} {self.backend} {self.precision or 'default precision'}" + (f" [{extra}]" if extra else "")

    def argv(self) -> list[str]:
        """The ``sdshape run`` arguments of this job (without ``--json``)."""
        args = ["--shape", self.shape, "--backend", self.backend]
        if self.precision:
            args += ["--precision", self.precision]
        by_name = {f.name: f for f in fields(RunOptions)}
        for name, value in self.setting.items():
            spec = by_name[name].metadata
            if spec["action"] == "store_false":
                args += [spec["flag"]] if value is False else []
            elif spec["action"] is not None and not isinstance(spec["action"], str):  # --profile/--no-profile
                args += [spec["flag"] if value else spec["flag"].replace("--", "--no-", 1)]
            elif spec["action"] == "store_true":
                args += [spec["flag"]] if value else []
            else:
                args += [spec["flag"], str(value)]
        return args


def settable() -> dict[str, Any]:
    return {f.name: f for f in fields(RunOptions) if RUN in f.metadata["where"] and f.name not in NOT_A_SETTING}


def load_matrix(path: str | Path) -> list[Job]:
    """The jobs of a matrix file; anything malformed is one line naming the bad key and the valid ones."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: cannot read: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{path}: not TOML: {error}") from None
    unknown = set(data) - {*AXES, "settings"}
    if unknown:
        raise UsageError(f"{path}: unknown keys {sorted(unknown)}; valid: {', '.join([*AXES, 'settings'])}")
    axes = {}
    for key in AXES:
        values = data.get(key, [None] if key == "precisions" else [])
        if not isinstance(values, list) or not values or not all(v is None or isinstance(v, str) for v in values):
            raise UsageError(f"{path}: {key} must be a non-empty list of names, got {values!r}")
        axes[key] = values
    settings = data.get("settings", [{}])
    if not isinstance(settings, list) or not all(isinstance(s, dict) for s in settings):
        raise UsageError(f"{path}: settings must be [[settings]] tables, got {settings!r}")
    valid = settable()
    for number, setting in enumerate(settings, 1):
        for name in setting:
            if name not in valid:
                raise UsageError(f"{path}: setting #{number}: unknown run option {name!r}; valid: {', '.join(valid)}")
    combos = itertools.product(axes["shapes"], axes["backends"], axes["precisions"], settings)
    return [Job(index, shape, backend, precision, dict(setting)) for index, (shape, backend, precision, setting) in
            enumerate(combos)]  # fmt: skip
