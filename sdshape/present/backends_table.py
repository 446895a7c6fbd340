"""The backends side by side, per stage: time, speedup over eager, peak memory and its ratio to eager's, build
time and parity; ★ marks the fastest result whose output matches eager fp32 (nothing is starred when parity
was not checked). Memory is part of a backend's cost: ONNX Runtime running four times the memory of
compiled PyTorch is a finding, not a footnote.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from sdshape.core import units
from sdshape.core.vocabulary import STAGES
from sdshape.present.tables import memory_cell
from sdshape.result.model import StageResult, caption_label


def _parity_cell(result: StageResult) -> str:
    found = result.parity
    if found is None:
        return "not checked" if result.status == "ok" else "-"
    if found.is_reference:
        return "reference"
    if found.rel_l2 is None:
        return "[red]✗[/red]"
    mark = "✓" if found.ok else "[red]✗[/red]"
    return f"{mark} {found.rel_l2:.1e}"


def backends_table(results: list[StageResult]) -> Table | None:
    """Backends side by side per stage: time and speedup over eager, peak memory and its ratio to eager's,
    build time, parity; ★ the fastest result whose output matches eager fp32."""
    backends = list(dict.fromkeys(result.id.backend for result in results))
    if len(backends) < 2:
        return None
    index = {(result.stage, result.id.backend): result for result in results}
    checked = any(result.parity is not None and result.parity.ok is not None for result in results)
    title = "★ fastest result whose output matches eager fp32" if checked else "parity not checked: nothing starred"
    memory_source = caption_label(results[0].device)
    table = Table(title=f"backends side by side ({title})")
    for column in ("stage", "backend", "time", "vs eager", f"peak mem ({memory_source})", "mem vs eager", "build",
                   "parity"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("stage", "backend", "parity") else "right")
    for stage in STAGES:
        rows = {backend: index.get((stage, backend)) for backend in backends}
        medians = {b: r.median for b, r in rows.items() if r is not None and r.median is not None}
        valid = {b: medians[b] for b in medians if rows[b].rankable}  # type: ignore[union-attr]
        fastest = min(valid, key=valid.get) if valid else None  # type: ignore[arg-type]
        eager = rows.get("eager")
        eager_time = medians.get("eager")
        eager_peak = eager.standing_peak() if eager is not None else None
        if stage == "pipeline":
            table.add_section()
        for backend in backends:
            result = rows[backend]
            if result is None:
                continue
            median = medians.get(backend)
            time_cell = units.seconds(median) if median is not None else f"[red]{result.status}[/red]"
            if result.status == "invalid":
                time_cell = f"[red]{units.seconds(median)} invalid[/red]"
            if backend == fastest:
                time_cell += " ★"
            if result.throttled:
                time_cell += f" [red]{result.throttled}[/red]"
            # Speed does not depend on parity: an unchecked row shows its speedup; an invalid one does not.
            speedup = f"{eager_time / median:.2f}x" if eager_time and median and result.status == "ok" else "-"
            peak = result.standing_peak()
            ratio = "-"
            if eager_peak and eager_peak.bytes and peak.bytes is not None and peak.key == eager_peak.key:
                ratio = f"{peak.bytes / eager_peak.bytes:.2f}x"
            artifact = result.backend.artifact
            build = f"{artifact.build_s or 0:.1f} s {artifact.cache or ''}".strip() if artifact else "-"
            memory = memory_cell(peak, memory_source, result)
            table.add_row(stage, backend, time_cell, speedup, memory, ratio, build, _parity_cell(result))
    return table


def print_backends(results: list[StageResult], console: Console | None = None) -> None:
    table = backends_table(results)
    if table is None:
        return
    console = console or Console()
    console.print(table)
    console.print(
        "  build: compile / export / engine time, measured apart from the rounds; reused = loaded from the cache. "
        "parity: relative L2 error against eager fp32 on the same inputs. peak mem: over the pre-load baseline; a "
        "backend with its own copy of the weights (ONNX Runtime, TensorRT) runs without torch's copy, so its peak "
        "holds one copy, as eager's does",
        highlight=False,
    )
