"""The dashboard's HTML: the index and one page per timeline.

Tables are written here, so a page reads without JavaScript; the chart and the index's filters are
``dashboard.js``'s. Each page embeds its own data as JSON in a ``<script type="application/json">``:
a page opened from ``file://`` cannot fetch a file beside it, so nothing is fetched at all.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from sdshape.present.dashboard.timeline_data import FILTERS, verdict_counts
from sdshape.result.output import standard_json

FILTER_LABELS = {"gpu": "GPU", "driver": "driver", "backend": "backend", "shape": "shape", "stage": "stage"}
KEY_COLUMNS = ("precision", "resolution", "batch", "steps")
STEP_HEADERS = ["verdict", "after", "change", "level", "z", "runs after", "attribution", "why"]


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    value = seconds * 1e3
    return f"{value:,.1f} ms" if abs(value) >= 10 else f"{value:.3f} ms"


def percent(value: float | None, sign: bool = True) -> str:
    return "-" if value is None else (f"{value:+.1%}" if sign else f"{value:.1%}")


def embedded_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``</script>`` or ``<!--`` can end or bend it."""
    text = standard_json(value, indent=None)  # a non-finite figure becomes null, as in every JSON we write
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page(title: str, body: str, kind: str, root: str, data: Any) -> str:
    """A whole page: its data embedded, the vendored uPlot and the dashboard's script and style linked."""
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<meta name='generator' content='sdshape publish'>"
        f"<title>{escape(title)}</title><link rel='icon' href='data:,'>"
        f"<link rel='stylesheet' href='{root}assets/uPlot.min.css'>"
        f"<link rel='stylesheet' href='{root}assets/dashboard.css'></head>\n"
        f"<body data-page='{kind}'>\n{body}\n"
        f"<script type='application/json' id='dashboard-data'>{embedded_json(data)}</script>\n"
        f"<script src='{root}assets/uPlot.iife.min.js'></script>\n"
        f"<script src='{root}assets/dashboard.js'></script>\n</body></html>\n"
    )


def _badges(counts: dict[str, int]) -> str:
    if not counts:
        return "<span class='muted'>none</span>"
    return " ".join(
        f"<span class='badge {escape(verdict.replace(' ', '-'))}'>{count} {escape(verdict)}</span>"
        for verdict, count in sorted(counts.items())
    )


def _index_row(document: dict[str, Any]) -> str:
    data = " ".join(
        f"data-{name}='{escape('|'.join(value) if isinstance(value, list) else value)}'"
        for name in FILTERS
        for value in [document[name]]
    )
    key = document["key"]
    cells = [
        f"<a href='series/{escape(document['id'])}.html'>{escape(document['name'])}</a>",
        escape(document["gpu"]),
        escape(", ".join(document["driver"]) or "-"),
        escape(document["backend"]),
        escape(document["shape"]),
        escape(document["stage"]),
        *(escape(str(key.get(column, "-"))) for column in KEY_COLUMNS),
        str(len(document["points"])),
        ms(document["last"]),
        percent(document["change"]),
        percent(document["run_to_run"], sign=False),
        _badges(verdict_counts(document)),
    ]
    return f"<tr {data}>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def index_page(documents: list[dict[str, Any]], choices: dict[str, list[str]], about: dict[str, Any]) -> str:
    filters = "".join(
        f"<label>{FILTER_LABELS[name]} <select id='filter-{name}' data-filter='{name}'><option value=''>all</option>"
        + "".join(f"<option>{escape(value)}</option>" for value in choices[name])
        + "</select></label>"
        for name in FILTERS
    )
    headers = ["timeline", "GPU", "drivers", "backend", "shape", "stage", *KEY_COLUMNS]
    headers += ["runs", "last median", "first → last", "run-to-run σ", "steps"]
    regressions = sum(verdict_counts(d).get("regression", 0) for d in documents)
    body = (
        "<header><h1>sdshape dashboard</h1>"
        f"<p>{len(documents)} timelines from {about['runs']} runs ({about['rows']} rows), {regressions} "
        f"regression(s); store {escape(about['store'])}, published {escape(about['generated'])}.</p>"
        f"<p class='muted'>{escape(about['rule'])}</p><details class='muted'><summary>series key</summary>"
        f"{escape(about['key'])}</details></header>\n"
        f"<nav class='filters'>{filters}<span id='shown-count'>{len(documents)} of {len(documents)} shown</span>"
        "</nav>\n"
        "<table id='timelines'><thead><tr>"
        + "".join(f"<th>{escape(h)}</th>" for h in headers)
        + "</tr></thead><tbody>\n"
        + "\n".join(_index_row(d) for d in documents)
        + "\n</tbody></table>"
    )
    return page("sdshape dashboard", body, "index", "", {"timelines": len(documents)})


def _table(headers: list[str], rows: list[list[str]], element_id: str) -> str:
    if not rows:
        return f"<p id='{element_id}' class='muted'>none</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table id='{element_id}'><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _attribution(step: dict[str, Any]) -> str:
    """The event at the step, whether other machines step there too, and the reference workload's word."""
    parts = [f"event: {escape(step['cause'])}" if step["cause"] else "no version event at this run"]
    if step["reference"]:
        parts.append(f"reference workload: {escape(step['reference']['text'])}")
    if step["shared_with"]:
        parts.append(f"the event's effect: {step['shared_with'] + 1} machines step there")
    parts += [f"{escape(name)}: {escape(json.dumps(value))}" for name, value in step["extra"].items()]
    return "<br>".join(parts)


def _step_rows(document: dict[str, Any]) -> list[list[str]]:
    return [
        [
            f"<span class='badge {escape(s['verdict'].replace(' ', '-'))}'>{escape(s['verdict'])}</span>",
            escape(s["where"]),
            percent(s["change"]),
            f"{ms(s['level_before'])} → {ms(s['level_after'])}",
            "-" if s["z"] is None else f"{s['z']:.1f}",
            str(s["runs_after"]),
            _attribution(s),
            escape(s["why"]),
        ]
        for s in document["steps"]
    ]


def _throttled_section(document: dict[str, Any]) -> str:
    rows = [[escape(p["label"]), ms(p["median"]), ms(p["iqr"]), str(p["rounds"]), escape(p["path"])]
            for p in document["throttled"]]  # fmt: skip
    return (
        "<h3>Left out: timed while the GPU throttled</h3><p class='muted'>Grey crosses on the chart; not in the "
        "steps (a step there would be the machine's power or temperature).</p>"
        + _table(["run", "median", "IQR", "rounds", "file"], rows, "throttled")
    )


def series_page(document: dict[str, Any], about: dict[str, Any]) -> str:
    key_rows = [[escape(name), escape(json.dumps(value))] for name, value in document["key"].items()]
    events = [[escape(document["points"][e["after"]]["label"]), escape(e["kind"]), escape(e["label"])]
              for e in document["events"] if 0 <= e["after"] < len(document["points"])]  # fmt: skip
    points = [
        [str(i + 1), escape(p["label"]), ms(p["median"]), ms(p["iqr"]), str(p["rounds"]),
         escape(", ".join(f"{k}: {json.dumps(v)}" for k, v in p["extra"].items())), escape(p["path"])]
        for i, p in enumerate(document["points"])
    ]  # fmt: skip
    body = (
        "<header><p><a href='../index.html'>← all timelines</a></p>"
        f"<h1>{escape(document['name'])}</h1>"
        f"<p>{len(document['points'])} runs; run-to-run σ {percent(document['run_to_run'], sign=False)}; "
        f"published {escape(about['generated'])}.</p></header>\n"
        "<section><h2>Median time per run</h2><div id='chart' class='chart'></div>"
        "<p class='muted legend'>Points: each run's median. Band: each segment's level (the median of its runs, "
        "between steps) ± 2 run-to-run σ. Orange line (right axis): the reference workload recorded in each run, "
        "when it was. Dotted purple: a version event; dash-dot orange: a reference-workload "
        "change; grey: a measurement-method change; dashed red / green / grey: a regression / improvement / "
        "other step.</p></section>\n"
        "<section><h2>Steps</h2>"
        + _table(STEP_HEADERS, _step_rows(document), "steps")
        + "</section>\n<section><h2>Events</h2>"
        + _table(["after", "kind", "change"], events, "events")
        + "</section>\n<section><h2>Runs</h2>"
        + _table(["#", "run", "median", "IQR", "rounds", "notes", "file"], points, "runs")
        + (_throttled_section(document) if document["throttled"] else "")
        + "</section>\n<section><h2>Series key</h2>"
        + _table(["field", "value"], key_rows, "key")
        + "</section>"
    )
    return page(document["name"], body, "series", "../", document)
