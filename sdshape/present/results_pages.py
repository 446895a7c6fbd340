"""The docs' Results section, generated from the committed files under ``results/`` when the site is built.

A figure quoted by hand drifts from its file and loses its conditions; these tables are read from the files
themselves, so each one names the machine (the GPU, or the CPU when no GPU ran it) and the date its file
records, beside the conditions that make two figures comparable. One page per folder that holds run
results (``sdshape run --json`` or ``pytest bench/`` files); other JSON (detection tables, shapes files)
is listed, not tabulated. No torch: this runs in the docs build (``docs/hooks.py``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sdshape.core import units
from sdshape.core.errors import UsageError
from sdshape.present.tables import guidance_label
from sdshape.result.io import ResultFile, load
from sdshape.result.model import StageResult


@dataclass(frozen=True)
class ResultsPage:
    """One generated docs page: its path under the docs folder, its navigation title and its Markdown."""

    path: str
    title: str
    markdown: str


def machine_of(file: ResultFile, row: StageResult) -> str:
    """The machine a row ran on, from its file's environment: the GPU (with driver and CUDA) when the row ran
    on one, else the CPU with its core count, saying that no GPU was used."""
    info = file.machine_info
    if row.device == "cuda":
        name = info.get("gpu_name") or row.conditions.device_name or "an unnamed GPU"
        driver = f"driver {info.get('driver_version') or '?'}, CUDA {info.get('cuda_runtime_version') or '?'}"
        return f"GPU {name} ({driver})"
    cores = info.get("cpu_count")
    cpu = info.get("cpu_model") or info.get("processor") or "unnamed CPU"
    return f"CPU {cpu}" + (f", {cores} cores" if cores else "") + ", no GPU used"


def date_of(file: ResultFile) -> str:
    """The day the file was written (its ``datetime``; the file's name, for files without one)."""
    if file.datetime:
        return file.datetime[:10]
    return "date not recorded"


def _conditions(file: ResultFile, row: StageResult) -> str:
    c, t = row.conditions, row.timing
    libraries = ", ".join(
        f"{name} {file.machine_info[f'{name}_version']}"
        for name in ("torch", "diffusers")
        if file.machine_info.get(f"{name}_version")
    )
    threads = file.machine_info.get("torch_threads")
    return (
        f"{guidance_label(c.guidance, c.guidance_scale)}, {c.policy}; warm-up rounds: {t.warmup_rounds}, "
        f"timer {t.timer}" + (f"; {threads} torch threads" if threads else "") + (f"; {libraries}" if libraries else "")
    )


def _workload(row: StageResult) -> str:
    i = row.id
    return f"{i.shape} {i.precision}, batch {i.batch}, {i.resolution}x{i.resolution}, {i.steps} steps"


def _cell(row: StageResult) -> list[str]:
    peak = row.standing_peak()
    peak_cell = "flagged" if peak.bytes is None and row.memory.error else units.size(peak.bytes)
    return [
        row.id.backend,
        row.stage,
        units.seconds(row.median),
        units.seconds(row.timing.iqr),
        str(len(row.timing.rounds_s)),
        f"{peak_cell} ({peak.label})" if peak.bytes is not None else peak_cell,
        units.count(row.cost.params),
        row.status + (f", {row.throttled}" if row.throttled else ""),
    ]


HEAD = ["file", "backend", "stage", "median", "IQR", "rounds", "peak memory", "params", "status"]


def _tables(files: list[ResultFile], root: Path) -> list[str]:
    """One table per machine, date and conditions: a header naming them, then one line per row."""
    groups: dict[tuple[str, str, str, str], list[tuple[ResultFile, StageResult]]] = defaultdict(list)
    for file in files:
        for row in file.rows.values():
            groups[(_workload(row), machine_of(file, row), date_of(file), _conditions(file, row))].append((file, row))
    parts = []
    for (workload, machine, date, conditions), rows in groups.items():
        lines = [f"### {workload} on {machine}, {date}", "", f"Conditions: {conditions}.", ""]
        lines += ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
        for file, row in rows:
            cells = [f"`{file.path.name}`", *_cell(row)]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        parts.append("\n".join(lines) + "\n")
    return parts


def _folder_page(folder: Path, files: list[ResultFile], others: list[Path], root: Path) -> ResultsPage:
    name = folder.relative_to(root).as_posix()
    slug = folder.relative_to(root / "results").as_posix().replace("/", "-")
    intro = [f"# {name}", "", f"Generated from the run results in `{name}/` when this site was built."]
    if (folder / "README.md").is_file():
        intro.append(f"What was run, and why: `{name}/README.md`.")
    elif (folder.parent / "README.md").is_file() and folder.parent != root:
        intro.append(f"What was run, and why: `{folder.parent.relative_to(root).as_posix()}/README.md`.")
    intro.append(
        "Time is the median of the timed rounds; peak memory is the stage's standing peak, by the source named."
    )
    body = _tables(files, root)
    if others:
        body.append(
            "Other files here, not run results: "
            + ", ".join(f"`{p.relative_to(root).as_posix()}`" for p in others)
            + ".\n"
        )
    return ResultsPage(f"results/{slug}.md", name, "\n".join(intro) + "\n\n" + "\n".join(body))


def _readme_only(results: Path) -> list[Path]:
    return sorted(f.parent for f in results.rglob("README.md") if not any(f.parent.rglob("*.json")))


def results_pages(root: Path) -> list[ResultsPage]:
    """Every results folder's page under ``root`` (the repository's ``results/`` parent), then the index."""
    results = root / "results"
    by_folder: dict[Path, tuple[list[ResultFile], list[Path]]] = defaultdict(lambda: ([], []))
    for path in sorted(results.rglob("*.json")):
        try:
            by_folder[path.parent][0].append(load(path))
        except UsageError:
            by_folder[path.parent][1].append(path)
    pages = [
        _folder_page(folder, files, others, root) for folder, (files, others) in sorted(by_folder.items()) if files
    ]
    listed = [p for folder, (files, others) in sorted(by_folder.items()) if not files for p in others]
    index = [
        "# Results",
        "",
        "The measured tables of every run on file, one page per folder of `results/`, generated from the files "
        "when this site is built. Each table's header names the machine and the date its file records.",
        "",
        *(f"- [{page.title}]({Path(page.path).name})" for page in pages),
        "",
        "Files under `results/` that are not run results (detection and false-alarm tables, shapes files, "
        "format parity), described on the pages that quote them: "
        + ", ".join(f"`{p.relative_to(root).as_posix()}`" for p in listed)
        + ".",
        "",
        "Folders with notes and logs but no JSON: "
        + ", ".join(f"`{f.relative_to(root).as_posix()}/`" for f in _readme_only(results))
        + " (each README says what ran and where).",
    ]
    return [*pages, ResultsPage("results/index.md", "Overview", "\n".join(index) + "\n")]
