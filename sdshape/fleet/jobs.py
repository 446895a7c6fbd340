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

The whole matrix is checked before any job starts, with ``sdshape run``'s own rules
(:func:`sdshape.config.plan.resolve`, ``here=False``: what holds on any machine), so a bad
entry is one line naming the file, the entry and the field, and no Ray cluster is started.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

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
            problem = _bad_type(name, setting[name])
            if problem:
                raise UsageError(f"{path}: setting #{number}: {name} = {setting[name]!r}: {problem}")
    _check_axes(path, axes, composed=any("shapes_file" in setting for setting in settings))
    combos = itertools.product(axes["shapes"], axes["backends"], axes["precisions"], enumerate(settings, 1))
    jobs = []
    for index, (shape, backend, precision, (number, setting)) in enumerate(combos):
        jobs.append(Job(index, shape, backend, precision, dict(setting)))
        _check_job(path, jobs[-1], number if "settings" in data else None)
    return jobs


def _kinds(name: str) -> set[type]:
    hint = get_type_hints(RunOptions)[name]
    return set(getattr(hint, "__args__", (hint,))) - {type(None)}


def _bad_type(name: str, value: Any) -> str | None:
    """What is wrong with a setting's TOML type, or None: switches take true or false, numbers numbers, the
    rest text (``rounds``: a count or "auto"). Ranges are the run's own rules (:func:`_check_job`)."""
    kinds = _kinds(name)
    if bool in kinds:
        return None if isinstance(value, bool) else "must be true or false"
    if kinds & {int, float}:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "must be a number"
    if name == "rounds":
        return None if isinstance(value, (int, str)) and not isinstance(value, bool) else 'must be a count or "auto"'
    return None if isinstance(value, str) else "must be text"


# How each axis's names are checked alone: with the run's defaults (a GPU job); a backend also on the CPU,
# so a variant that runs on one device only (onnxruntime:cpu) passes.
ALONE = {"shapes": [{}], "backends": [{}, {"device": "cpu", "precision": "fp32"}], "precisions": [{}]}


def _check_axes(path: Path, axes: dict[str, list[Any]], composed: bool) -> None:
    """Each name of each axis on its own, by ``sdshape run``'s rules: a zoo shape (unless a setting names a
    shapes file: then each job's check finds it), a backend and the variant it declares, a precision."""
    from sdshape.config.plan import resolve

    for key, values in axes.items():
        for index, value in enumerate([] if key == "shapes" and composed else values):
            errors = []
            for extra in ALONE[key] if value is not None else []:
                try:
                    resolve(RunOptions(**{AXES[key]: value, **extra}), here=False)
                    break
                except UsageError as error:
                    errors.append(error)
            if errors and len(errors) == len(ALONE[key]):
                raise UsageError(f"{path}: {key}[{index}] = {value!r}: {errors[0]}")


def _check_job(path: Path, job: Job, number: int | None) -> None:
    """One job against ``sdshape run``'s rules, as far as they hold on any machine; the error names the
    setting's field when the rule is about one (a flag's name in the message), else the job."""
    from sdshape.config.plan import resolve

    options = RunOptions(shape=job.shape, backend=job.backend, precision=job.precision, **job.setting)
    try:
        resolve(options, here=False)
    except UsageError as error:
        message = str(error)
        named = [name for name, value in job.setting.items() if _names(message, name, value)]
        field = f": {named[0]} = {job.setting[named[0]]!r}" if named else ""
        job_number = f"job {job.index + 1}"
        where = f"setting #{number}{field} ({job_number}: {job.name})" if number else f"{job_number} ({job.name})"
        raise UsageError(f"{path}: {where}: {error}") from None


def _names(message: str, name: str, value: Any) -> bool:
    """Whether a run's error is about this setting: it names the option's flag, or quotes its text value."""
    flag = settable()[name].metadata["flag"]
    quoted = isinstance(value, str) and repr(value) in message
    return quoted or bool(re.search(rf"{re.escape(flag)}(?![\w-])", message))
