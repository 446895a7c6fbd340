"""``sdshape history DIR``: every result file under a folder, as series per GPU and result id.

Points are ordered by driver version, then library versions (CUDA, cuDNN,
torch, diffusers, transformers), then date. A *step* is a level shift between
two consecutive runs: binary segmentation finds the split that maximizes

    z = |mean_right - mean_left| / sqrt(1/W_left + 1/W_right)

where each point's weight is 1 / (its standard error^2 + (1% of its level)^2):
the within-run spread (IQR / 1.349 over sqrt(rounds)) plus a floor for the
run-to-run variation that within-run rounds do not see (``--run-to-run``,
default 1%, right for a dedicated GPU; a shared CPU needs far more). A split
counts when z >= 4 and the level moves by at least ``--threshold`` (5%); each
side is searched again, up to three steps per series.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdshape.core.errors import UsageError
from sdshape.core.vocabulary import ID_FIELDS
from sdshape.result.io import ResultFile, load
from sdshape.result.output import figure_png, folder_target, slug, write_atomic

Z_MIN = 4.0
RUN_TO_RUN = 0.01
MAX_STEPS = 3
ORDER_FIELDS = (
    "driver_version",
    "cuda_runtime_version",
    "cudnn_version",
    "torch_version",
    "diffusers_version",
    "transformers_version",
)


def version_key(value: Any) -> tuple:
    """Numeric-aware sort key: '550.54.15' < '560.28.3', '2.9.1' < '2.13.0'; missing sorts first."""
    if value is None:
        return ()
    return tuple(int(part) if part.isdigit() else part for part in re.findall(r"\d+|[a-zA-Z]+", str(value)))


@dataclass
class Point:
    label: str
    median: float
    spread: float  # IQR of the rounds
    rounds: int
    path: Path
    order: tuple

    @property
    def standard_error(self) -> float:
        sigma = self.spread / 1.349 if self.spread else 0.0
        return sigma / math.sqrt(max(self.rounds, 1))

    def weight(self, run_to_run: float = RUN_TO_RUN) -> float:
        return 1.0 / (self.standard_error**2 + (run_to_run * self.median) ** 2 or 1e-30)


@dataclass
class Step:
    after: int  # index of the last point before the step
    before_label: str
    after_label: str
    change: float
    z: float


@dataclass
class Series:
    gpu: str
    id: dict[str, Any]
    points: list[Point] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)


def _weighted(points: list[Point], run_to_run: float) -> tuple[float, float]:
    weights = [p.weight(run_to_run) for p in points]
    total = sum(weights)
    return sum(w * p.median for w, p in zip(weights, points, strict=True)) / total, total


def best_split(points: list[Point], run_to_run: float = RUN_TO_RUN) -> tuple[int, float, float] | None:
    """(index of the last point on the left, z, relative change) of the strongest split, or None."""
    best = None
    for k in range(1, len(points)):
        left_mean, left_weight = _weighted(points[:k], run_to_run)
        right_mean, right_weight = _weighted(points[k:], run_to_run)
        z = abs(right_mean - left_mean) / math.sqrt(1 / left_weight + 1 / right_weight)
        if best is None or z > best[1]:
            best = (k - 1, z, right_mean / left_mean - 1)
    return best


def detect_steps(
    points: list[Point], floor: float = 0.05, run_to_run: float = RUN_TO_RUN, offset: int = 0, depth: int = 0
) -> list[Step]:
    if len(points) < 2 or depth >= MAX_STEPS:
        return []
    split = best_split(points, run_to_run)
    if split is None:
        return []
    k, z, change = split
    if z < Z_MIN or abs(change) < floor:
        return []
    step = Step(offset + k, points[k].label, points[k + 1].label, change, z)
    left = detect_steps(points[: k + 1], floor, run_to_run, offset, depth + 1)
    right = detect_steps(points[k + 1 :], floor, run_to_run, offset + k + 1, depth + 1)
    return sorted([*left, step, *right], key=lambda s: s.after)[:MAX_STEPS]


def point_label(info: dict[str, Any], when: str | None) -> str:
    """Driver and torch versions, plus the run's date and time so that reruns stay apart."""
    parts = [f"driver {info['driver_version']}"] if info.get("driver_version") else []
    parts.append(f"torch {info.get('torch_version')}")
    if when:
        parts.append(when[:19].replace("T", " "))
    return " · ".join(parts)


def collect(
    folder: Path, gpu: str | None = None, floor: float = 0.05, run_to_run: float = RUN_TO_RUN
) -> tuple[list[Series], list[str]]:
    """All series under ``folder`` (optionally one GPU's), and notes on files that were skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"history: {folder} is not a directory")
    files: list[ResultFile] = []
    skipped: list[str] = []
    for path in sorted(folder.rglob("*.json")):
        try:
            files.append(load(path))
        except UsageError as error:
            skipped.append(str(error))
    if not files:
        raise UsageError(
            f"history: no result files under {folder}" + (f" ({len(skipped)} JSON files skipped)" if skipped else "")
        )
    gpus = sorted({f.gpu for f in files})
    if gpu is not None:
        chosen = [name for name in gpus if gpu.lower() in name.lower()]
        if not chosen:
            raise UsageError(f"history: no results for GPU {gpu!r}; found: {', '.join(gpus)}")
        files = [f for f in files if f.gpu in chosen]
    series: dict[tuple, Series] = {}
    for result in files:
        info = result.machine_info
        order = (*(version_key(info.get(name)) for name in ORDER_FIELDS), result.datetime or "")
        for row in result.rows.values():
            if row.status != "ok" or row.median is None:
                continue
            key = (result.gpu, row.id.key)
            entry = series.setdefault(key, Series(result.gpu, row.id.as_dict()))
            entry.points.append(
                Point(
                    point_label(info, result.datetime),
                    row.median,
                    row.timing.iqr or 0.0,
                    len(row.rounds),
                    result.path,
                    order,
                )
            )
    for entry in series.values():
        entry.points.sort(key=lambda p: p.order)
        entry.steps = detect_steps(entry.points, floor, run_to_run)
    ordered = sorted(series.values(), key=lambda s: (s.gpu, *(str(s.id[f]) for f in ID_FIELDS)))
    return ordered, skipped


def _id_label(id_dict: dict[str, Any], without: tuple[str, ...] = ("stage",)) -> str:
    return " · ".join(str(id_dict[f]) for f in ID_FIELDS if f not in without)


def markdown(series: list[Series], charts: dict[str, Path], skipped: list[str], floor: float, run_to_run: float) -> str:
    lines = ["# sdshape history", ""]
    lines.append(
        "Medians per result id, ordered by driver, then CUDA/cuDNN/torch/diffusers/transformers versions, then date. "
        f"A step is a level shift with z >= {Z_MIN:g} and at least {floor:.0%}; points are weighted by their "
        f"within-run spread plus a {run_to_run:.0%} run-to-run floor."
    )
    for gpu in sorted({s.gpu for s in series}):
        lines += [
            "",
            f"## {gpu}",
            "",
            "| stage | shape · backend · precision · batch · resolution · steps | runs | first | last | steps found |",
            "|---|---|---|---|---|---|",
        ]
        for entry in (s for s in series if s.gpu == gpu):
            steps = (
                "; ".join(
                    f"{s.change:+.1%} between {s.before_label} and {s.after_label} (z = {s.z:.1f})" for s in entry.steps
                )
                or "none"
            )
            first, last = entry.points[0].median, entry.points[-1].median
            lines.append(
                f"| {entry.id['stage']} | {_id_label(entry.id)} | {len(entry.points)} | {first * 1e3:.1f} ms | "
                f"{last * 1e3:.1f} ms | {steps} |"
            )
        for title, chart in charts.items():
            if chart.name.startswith(slug(gpu)):
                lines += ["", f"![{title}]({chart.name})"]
    if skipped:
        lines += ["", "Skipped files:", *(f"- {note}" for note in skipped)]
    return "\n".join(lines) + "\n"


def charts(series: list[Series], out: Path) -> dict[str, Path]:
    """One PNG per GPU and stage: median time against the ordered runs, steps marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: dict[str, Path] = {}
    for gpu in sorted({s.gpu for s in series}):
        for stage in dict.fromkeys(s.id["stage"] for s in series if s.gpu == gpu):
            group = [s for s in series if s.gpu == gpu and s.id["stage"] == stage]
            ordered = sorted({(p.order, p.label) for s in group for p in s.points})
            labels = list(dict.fromkeys(label for _, label in ordered))
            figure, axes = plt.subplots(figsize=(9, 4.5))
            for entry in group:
                xs = [labels.index(p.label) for p in entry.points]
                ys = [p.median * 1e3 for p in entry.points]
                errors = [p.spread * 1e3 / 2 for p in entry.points]
                axes.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=_id_label(entry.id))
                for step in entry.steps:
                    axes.axvline(xs[step.after] + 0.5, linestyle="--", color="grey")
                    axes.annotate(f"{step.change:+.0%}", (xs[step.after] + 0.5, max(ys)), ha="center", va="bottom")
            axes.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
            axes.set_ylabel("median time per call (ms); bars: IQR")
            axes.set_title(f"{gpu}: {stage}")
            axes.legend(fontsize=7)
            figure.tight_layout()
            path = write_atomic(out / f"{slug(gpu)}-{stage}.png", figure_png(figure))
            written[f"{gpu}: {stage}"] = path
    return written


def write_report(
    folder: Path, out: Path, gpu: str | None = None, floor: float = 0.05, run_to_run: float = RUN_TO_RUN
) -> tuple[Path, list[Series]]:
    out = folder_target(out, "--out")
    series, skipped = collect(folder, gpu, floor, run_to_run)
    out.mkdir(parents=True, exist_ok=True)
    written = charts(series, out)
    report = write_atomic(out / "history.md", markdown(series, written, skipped, floor, run_to_run))
    return report, series
