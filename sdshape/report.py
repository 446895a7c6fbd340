"""``sdshape report RESULTS...``: the question at a glance, as Markdown and a self-contained HTML page.

For each measured run: a chart of every stage's share of the parameters, the
time, the memory (weights + activations) and the energy; then the feasibility
matrix (catalog GPU x run x residency policy) with projected seconds per image,
each labelled as a projection with its calibration source.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from sdshape import feasibility, units
from sdshape.errors import UsageError
from sdshape.results_io import ResultFile, load

STAGES = feasibility.STAGES
VERDICT_MARK = {"fits": "fits", "needs offload": "needs offload", "does not fit": "does not fit"}


def _shares(result: ResultFile, run: feasibility.RunProfile) -> dict[str, dict[str, float | None]]:
    rows = {r.info["stage"]: r for r in result.rows.values() if all(r.info[k] == v for k, v in run.key.items())}
    memory = {s: run.stages[s].weights + run.stages[s].activations for s in STAGES}
    total_memory = sum(memory.values()) or 1
    return {
        stage: {
            "params": rows[stage].info.get("param_share"),
            "time": rows[stage].info.get("time_share"),
            "memory": memory[stage] / total_memory,
            "energy": rows[stage].info.get("energy_share"),
        }
        for stage in STAGES
    }


def share_chart(title: str, shares: dict[str, dict[str, float | None]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [
        ("params", "parameters"),
        ("time", "time"),
        ("memory", "memory (weights + activations)"),
        ("energy", "energy"),
    ]
    present = [(key, label) for key, label in metrics if all(shares[s][key] is not None for s in STAGES)]
    figure, axes = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / len(present)
    for index, (key, label) in enumerate(present):
        xs = [i + (index - (len(present) - 1) / 2) * width for i in range(len(STAGES))]
        values = [100 * shares[s][key] for s in STAGES]
        bars = axes.bar(xs, values, width, label=label)
        axes.bar_label(bars, fmt="%.0f%%", fontsize=7)
    axes.set_xticks(range(len(STAGES)), STAGES)
    axes.set_ylabel("share of the image's total (%)")
    axes.set_ylim(0, 110)
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8)
    missing = [label for key, label in metrics if (key, label) not in present]
    if missing:
        axes.text(
            0.99,
            0.97,
            "not measured here: " + ", ".join(missing),
            transform=axes.transAxes,
            ha="right",
            va="top",
            fontsize=7,
            color="grey",
        )
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def _shapes_document(path: str) -> dict[str, Any] | None:
    """A ``sdshape shapes --out`` document, or None when the file is something else."""
    import json

    from sdshape.explorer import is_shapes_document

    try:
        document = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # results_io.load gives the proper one-line error
    return document if is_shapes_document(document) else None


def build(paths: list[str], gpu_names: list[str] | None, catalog_file: str | None) -> dict[str, Any]:
    catalog = feasibility.load_catalog(catalog_file)
    gpus = feasibility.pick(catalog, gpu_names)
    runs: list[dict[str, Any]] = []
    explorations: list[dict[str, Any]] = []
    skipped: list[str] = []
    for path in paths:
        exploration = _shapes_document(path)
        if exploration is not None:
            explorations.append({"file": str(path), "document": exploration})
            continue
        result = load(path)
        found, left_out = feasibility.profiles(result, catalog)
        skipped += left_out
        for run in found:
            runs.append(
                {
                    "run": run,
                    "file": str(path),
                    "shares": _shares(result, run),
                    "matrix": [feasibility.feasibility(run, gpu) for gpu in gpus],
                }
            )
    measured = [e for e in explorations if "cost_per_100m" in e["document"]]
    if not runs and not measured:
        why = f" ({'; '.join(skipped)})" if skipped else ""
        raise UsageError(
            "report: no complete run (text_encoder, unet_loop and vae_decode all ok, memory readings valid) "
            f"and no measured shapes.json in the given files{why}"
        )
    return {"runs": runs, "gpus": gpus, "explorations": measured, "skipped": skipped}


COST_COLUMNS = ("kind", "component", "params", "s/image", "s per 100 M params", "activations per 100 M")


def cost_cells(document: dict[str, Any]) -> list[tuple[str, ...]]:
    """The cost-per-100M-parameters table of a shapes document, as formatted cells."""
    return [
        (
            row["kind"],
            row["component"],
            units.count(row["params"]),
            units.seconds(row["seconds_per_image"]),
            units.seconds(row["seconds_per_100m"]),
            units.size(row["activation_bytes_per_100m"]),
        )
        for row in document["cost_per_100m"]
    ]


def exploration_markdown(exploration: dict[str, Any], chart: str) -> list[str]:
    from sdshape.explorer import conditions

    document = exploration["document"]
    lines = [
        "",
        f"## Parameter budget {document['budget']:.3g}: spent differently",
        "",
        f"Conditions: {conditions(document)}; file `{exploration['file']}`.",
        "",
        f"![pareto]({chart})",
        "",
        "| " + " | ".join(COST_COLUMNS) + " |",
        "|---" * len(COST_COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in cost_cells(document)]
    check = document.get("check")
    if check and check.get("difference") is not None:
        lines += [
            "",
            f"Composition check: {check['name']} end to end {units.seconds(check['end_to_end_s'])}, "
            f"composed {units.seconds(check['composed_s'])} ({check['difference']:+.1%}).",
        ]
    return lines


def _cell(entry: dict[str, Any]) -> str:
    projection = entry["projection"]["seconds_per_image"]
    seconds = f"{projection:.2f} s/img" if projection is not None else "-"
    policy = entry["best_policy"].replace("_", " ") if entry["best_policy"] else "-"
    return f"{VERDICT_MARK[entry['verdict']]} ({policy}); ~{seconds}"


def markdown(report: dict[str, Any], chart_names: list[str]) -> str:
    lines = ["# sdshape report", ""]
    lines.append(
        "Memory: measured weights and activation peaks per stage, plus the CUDA context. Time: **projections**"
        " (roofline floor per GPU scaled by the efficiency measured on the run's own machine); each says its"
        " calibration. Conditions are those of the measured run."
    )
    for entry, chart in zip(report["runs"], chart_names, strict=True):
        run: feasibility.RunProfile = entry["run"]
        lines += [
            "",
            f"## {run.label}",
            "",
            f"Measured on {run.measured_on}; file `{entry['file']}`.",
            "",
            f"![shares]({chart})",
            "",
        ]
        lines += ["| stage | weights | activations | activations from |", "|---|---|---|---|"]
        for stage, cost in run.stages.items():
            lines.append(
                f"| {stage} | {units.size(cost.weights)} | {units.size(cost.activations)} | {cost.activations_source} |"
            )
        lines += ["", f"CUDA context: {units.size(run.context)} ({run.context_source}).", ""]
        policies = list(feasibility.POLICIES)
        lines += [
            "| GPU | VRAM | verdict | " + " | ".join(policies) + " | projected s/image | it/s (UNet) |",
            "|---" * (5 + len(policies)) + "|",
        ]
        for item in entry["matrix"]:
            gpu = next(g for g in report["gpus"] if g.name == item["gpu"])
            needs = " | ".join(
                f"{units.size(item['needs_bytes'][p])} {'ok' if item['fits'][p] else 'no'}" for p in policies
            )
            projection = item["projection"]
            seconds = projection["seconds_per_image"]
            it_s = projection["unet_it_s"]
            lines.append(
                f"| {gpu.name} | {gpu.vram_gib:g} GiB | {item['verdict']} | {needs} | "
                f"{seconds:.2f} (proj.) | {it_s:.1f} (proj.) |"
                if seconds and it_s
                else f"| {gpu.name} | {gpu.vram_gib:g} GiB | {item['verdict']} | {needs} | - | - |"
            )
        calibration = entry["matrix"][0]["projection"]["calibration"] if entry["matrix"] else ""
        lines += ["", f"Projection calibration: {calibration}."]
    for exploration, chart in report.get("exploration_charts", []):
        lines += exploration_markdown(exploration, chart)
    if report.get("skipped"):
        lines += ["", "## Runs left out", ""]
        lines += [f"- {note}" for note in report["skipped"]]
    lines += ["", "## Policies", ""]
    lines += [f"- `{name}`: {text}" for name, text in feasibility.POLICIES.items()]
    lines += ["", "## GPU catalog sources", ""]
    lines += [f"- {g.name}: {g.source}" for g in report["gpus"]]
    return "\n".join(lines) + "\n"


def html_page(report: dict[str, Any], charts: list[bytes]) -> str:
    """One self-contained page: charts inline as base64 PNG, no external assets."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>sdshape report</title><style>",
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}",
        "table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px}",
        "th{background:#f3f3f3}.fits{background:#e3f6e3}.offload{background:#fff4d6}.no{background:#fbe3e3}",
        ".note{color:#555;font-size:13px}</style></head><body>",
        "<h1>sdshape report</h1>",
        "<p class='note'>Memory: measured weights and activation peaks per stage plus the CUDA context. "
        "Time: <b>projections</b>, each with its calibration. Conditions are those of the measured run.</p>",
    ]
    policies = list(feasibility.POLICIES)
    matrix_rows = []
    for gpu in report["gpus"]:
        cells = []
        for entry in report["runs"]:
            item = next(i for i in entry["matrix"] if i["gpu"] == gpu.name)
            css = {"fits": "fits", "needs offload": "offload", "does not fit": "no"}[item["verdict"]]
            cells.append(f"<td class='{css}'>{html.escape(_cell(item))}</td>")
        matrix_rows.append(f"<tr><th>{html.escape(gpu.name)} ({gpu.vram_gib:g} GiB)</th>{''.join(cells)}</tr>")
    header = "".join(f"<th>{html.escape(e['run'].label)}</th>" for e in report["runs"])
    parts += [
        "<h2>Feasibility matrix</h2>",
        "<p class='note'>Verdict with the least intrusive policy that fits, "
        "and projected seconds per image (projection).</p>",
        f"<table><tr><th>GPU</th>{header}</tr>{''.join(matrix_rows)}</table>",
    ]
    for entry, chart in zip(report["runs"], charts, strict=True):
        run = entry["run"]
        encoded = base64.b64encode(chart).decode()
        parts += [
            f"<h2>{html.escape(run.label)}</h2>",
            f"<p class='note'>Measured on {html.escape(run.measured_on)}; CUDA context "
            f"{units.size(run.context)} ({html.escape(run.context_source)}).</p>",
            f"<img alt='shares of {html.escape(run.label)}' src='data:image/png;base64,{encoded}'>",
        ]
        rows = []
        for item in entry["matrix"]:
            needs = "".join(
                f"<td class='{'fits' if item['fits'][p] else 'no'}'>{units.size(item['needs_bytes'][p])}</td>"
                for p in policies
            )
            seconds = item["projection"]["seconds_per_image"]
            rows.append(
                f"<tr><th>{html.escape(item['gpu'])}</th>{needs}<td>{f'{seconds:.2f}' if seconds else '-'}</td></tr>"
            )
        head = "".join(f"<th>{html.escape(p.replace('_', ' '))}</th>" for p in policies)
        calibration = entry["matrix"][0]["projection"]["calibration"] if entry["matrix"] else ""
        parts += [
            f"<table><tr><th>GPU</th>{head}<th>s/image (projection)</th></tr>{''.join(rows)}</table>",
            f"<p class='note'>Projection calibration: {html.escape(calibration)}.</p>",
        ]
    for exploration, chart_bytes in report.get("exploration_images", []):
        from sdshape.explorer import conditions

        document = exploration["document"]
        encoded = base64.b64encode(chart_bytes).decode()
        head = "".join(f"<th>{html.escape(column)}</th>" for column in COST_COLUMNS)
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>"
            for cells in cost_cells(document)
        )
        parts += [
            f"<h2>Parameter budget {document['budget']:.3g}: spent differently</h2>",
            f"<p class='note'>Conditions: {html.escape(conditions(document))}; file "
            f"{html.escape(exploration['file'])}.</p>",
            f"<img alt='Pareto chart' src='data:image/png;base64,{encoded}'>",
            f"<table><tr>{head}</tr>{rows}</table>",
        ]
    if report.get("skipped"):
        parts += ["<h2>Runs left out</h2><ul>"]
        parts += [f"<li>{html.escape(note)}</li>" for note in report["skipped"]]
        parts += ["</ul>"]
    parts += ["<h2>GPU catalog sources</h2><ul>"]
    parts += [f"<li>{html.escape(g.name)}: {html.escape(g.source)}</li>" for g in report["gpus"]]
    parts += ["</ul></body></html>"]
    return "\n".join(parts)


def write(paths: list[str], out: Path, gpu_names: list[str] | None, catalog_file: str | None) -> tuple[Path, Path]:
    report = build(paths, gpu_names, catalog_file)
    out.mkdir(parents=True, exist_ok=True)
    charts = [share_chart(entry["run"].label, entry["shares"]) for entry in report["runs"]]
    names = []
    for index, chart in enumerate(charts):
        name = f"shares-{index + 1}.png"
        (out / name).write_bytes(chart)
        names.append(name)
    report["exploration_charts"], report["exploration_images"] = [], []
    for index, exploration in enumerate(report["explorations"]):
        from sdshape.explorer import conditions, pareto_chart

        path = out / f"pareto-{index + 1}.png"
        pareto_chart(exploration["document"]["shapes"], path, conditions(exploration["document"]))
        report["exploration_charts"].append((exploration, path.name))
        report["exploration_images"].append((exploration, path.read_bytes()))
    markdown_path = out / "report.md"
    markdown_path.write_text(markdown(report, names))
    html_path = out / "report.html"
    html_path.write_text(html_page(report, charts))
    return markdown_path, html_path
