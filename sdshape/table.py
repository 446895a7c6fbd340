"""The allocation table: per stage, parameter share next to time, memory and energy shares."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from sdshape import memory_figures, units
from sdshape.vocabulary import STAGES


def _memory_cell(figure: memory_figures.Figure, caption_source: str, info: dict[str, Any]) -> str:
    """A memory figure as printed: flagged (never a number) when it broke a rule, its source when unusual."""
    value, source, _ = figure
    if value is None:
        return "[red]flagged[/red]" if info.get("memory_error") else "-"
    return units.size(value) + ("" if source == caption_source else f" ({source})")


def _spread(stats: dict[str, Any] | None) -> str:
    return units.seconds(stats["iqr"]) if stats else "-"


def conditions(info: dict[str, Any]) -> str:
    return (
        f"{info['shape']} · {info['backend']} · {info['precision']} · batch {info['batch']} · "
        f"{info['resolution']}x{info['resolution']} · {info['steps']} steps · CFG {info['guidance_scale']} · "
        f"{info['rounds']} timed rounds after {info['warmup_rounds']} warm-up · timer {info['timer']} · "
        f"{info['device_name']}"
    )


def allocation_table(benchmarks: list[dict[str, Any]], title: str | None = None) -> Table:
    by_stage = {b["extra_info"]["stage"]: b for b in benchmarks}
    first = next(iter(by_stage.values()))["extra_info"]
    memory_source = memory_figures.caption_label(first.get("device"))
    activation_source = memory_figures.activations(first).label
    table = Table(title=title, caption=conditions(first), caption_justify="left")
    for column in (
        "stage",
        "params",
        "params %",
        "time",
        "IQR",
        "time %",
        "weights",
        "peak mem",
        "activations",
        "J/call",
        "J %",
        "FLOPs",
        "TFLOP/s",
        "status",
    ):
        table.add_column(column, justify="left" if column in ("stage", "status") else "right", no_wrap=True)
    context = (first.get("memory") or {}).get("cuda_context_bytes")
    context_note = f" (CUDA context of {units.size(context)} not included)" if context else ""
    table.caption = (
        f"{table.caption}\ntime: median of timed rounds · peak mem: {memory_source}, over the pre-load "
        f"baseline{context_note} · activations: {activation_source} (weights resident)"
    )
    for stage in STAGES:
        if stage not in by_stage:
            continue
        bench = by_stage[stage]
        info, stats = bench["extra_info"], bench.get("stats")
        energy = info.get("energy_j")
        tflops = info.get("tflops_achieved")
        status = info["status"] if info["status"] == "ok" else f"[red]{info['status']}[/red]"
        if stage == "pipeline":
            table.add_section()
        table.add_row(
            stage,
            units.count(info.get("params")),
            units.share(info.get("param_share")),
            units.seconds(stats["median"]) if stats else "-",
            _spread(stats),
            units.share(info.get("time_share")),
            units.size((info.get("memory") or {}).get("weights_bytes")),
            _memory_cell(memory_figures.standing_peak(info), memory_source, info),
            _memory_cell(memory_figures.activations(info), activation_source, info),
            f"{energy:.2f} J" if energy is not None else "n/a",
            units.share(info.get("energy_share")),
            units.count(info.get("flops")),
            f"{tflops:.3f}" if tflops is not None else "-",
            status,
        )
    return table


def footnotes(benchmarks: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for bench in benchmarks:
        info = bench["extra_info"]
        steps = info.get("step_times")
        if info["stage"] == "unet_loop" and steps:
            lines.append(
                f"unet_loop per step: first {units.seconds(steps['first_s'])}, "
                f"others median {units.seconds(steps['rest_median_s'])} ({info['steps']} steps, CFG batch x2)"
            )
        if info["stage"] == "pipeline" and info.get("residual"):
            lines.append(residual_line(info["residual"]))
        if info["status"] != "ok":
            lines.append(f"{info['stage']}: {info['status']}: {info.get('message')}")
        if info.get("memory_error"):
            lines.append(f"[red]{info['stage']}: memory flagged, not printed[/red]: {info['memory_error']}")
    first = benchmarks[0]["extra_info"] if benchmarks else {}
    lines += [f"composition: {note}" for note in first.get("composition_notes") or []]
    lines += energy_lines(benchmarks)
    lines.append(clock_line(benchmarks))
    lines.append("time %, energy %: of text_encoder + unet_loop + vae_decode (one image); FLOPs: 1 MAC = 2 FLOPs")
    if first.get("device") == "cpu":
        lines.append("peak mem on the CPU: host RSS growth over the pre-load baseline (no VRAM)")
    return lines


def residual_line(residual: dict[str, Any]) -> str:
    """The pipeline against its stages: a finding when inside the spread, a warning when not."""
    summed, value = units.seconds(residual["sum_of_stages_s"]), units.seconds(residual["residual_s"])
    share = units.share(residual["residual_share"])
    spread = residual.get("combined_spread_s")
    if spread is None:  # a file written before the spread was recorded
        return f"pipeline vs sum of stages: {summed} summed, residual {value} ({share})"
    if residual.get("within_spread"):
        return (
            f"pipeline vs sum of stages: {summed} summed, residual {value} ({share}), "
            f"within the combined spread of {units.seconds(spread)}"
        )
    slower = residual.get("stages_slower_than_pipeline") or []
    alone = f"; {', '.join(slower)} alone took longer than the whole pipeline" if slower else ""
    judged = (
        f"more than their combined spread of {units.seconds(spread)}"
        if spread
        else "and one round per stage gives no spread to judge that by"
    )
    return (
        f"[yellow]warning: pipeline residual {value} ({share}) against the sum of its stages ({summed}), "
        f"{judged}{alone}: too few or too noisy rounds, so the time shares are uncertain; "
        "more rounds (--rounds) or a quieter machine[/yellow]"
    )


def energy_lines(benchmarks: list[dict[str, Any]]) -> list[str]:
    """How energy was measured, or why it was not."""
    lines = []
    for bench in benchmarks:
        info = bench["extra_info"]
        method = info.get("energy_method") or {}
        if info.get("energy_j") is not None and method.get("method"):
            how = "NVML energy counter" if method["method"] == "counter_window" else "power readings integrated"
            lines.append(
                f"{info['stage']} energy: {how} over {method.get('calls')} calls in {method.get('window_s'):.2f} s"
            )
        elif info.get("status") == "ok" and info.get("energy_note") and info.get("device") == "cuda":
            lines.append(f"{info['stage']} energy n/a: {info['energy_note']}")
    first = benchmarks[0]["extra_info"] if benchmarks else {}
    if first.get("device") != "cuda" and first.get("energy_note"):
        lines.append(f"energy n/a: {first['energy_note']}")
    return lines


def clock_line(benchmarks: list[dict[str, Any]]) -> str:
    """SM clock under load and whether any stage was throttled, as nvbench prints it."""
    infos = [b["extra_info"] for b in benchmarks]
    clocks = [i["sm_clock_mhz"] for i in infos if i.get("sm_clock_mhz")]
    if not clocks:
        return "SM clock: n/a (no NVIDIA GPU in use)"
    reasons = sorted({r for i in infos for r in ((i.get("throttle") or {}).get("reasons") or [])})
    low, high = min(c["min"] for c in clocks), max(c["max"] for c in clocks)
    middle = sorted(c["median"] for c in clocks)[len(clocks) // 2]
    throttled = f"[red]throttled ({', '.join(reasons)}): do not trust these times[/red]" if reasons else "not throttled"
    return f"SM clock under load: median {middle:.0f} MHz (range {low:.0f}-{high:.0f}) · {throttled}"


def print_report(benchmarks: list[dict[str, Any]], console: Console | None = None) -> None:
    console = console or Console()
    console.print(allocation_table(benchmarks, title="sdshape: where the parameters, time, memory and energy go"))
    for line in footnotes(benchmarks):
        console.print(f"  {line}", highlight=False)


def _valid(info: dict[str, Any]) -> bool:
    """Rankable: measured, and its output matched eager fp32 (or it is eager fp32)."""
    return info["status"] == "ok" and bool((info.get("parity") or {}).get("ok"))


def _parity_cell(info: dict[str, Any]) -> str:
    found = info.get("parity")
    if found is None:
        return "not checked" if info["status"] == "ok" else "-"
    if found.get("is_reference"):
        return "reference"
    if "rel_l2" not in found:
        return "[red]✗[/red]"
    mark = "✓" if found["ok"] else "[red]✗[/red]"
    return f"{mark} {found['rel_l2']:.1e}"


def comparison_table(benchmarks: list[dict[str, Any]]) -> Table | None:
    """Backends side by side per stage: time, speedup over eager, build time, parity; ★ the fastest valid."""
    backends = list(dict.fromkeys(b["extra_info"]["backend"] for b in benchmarks))
    if len(backends) < 2:
        return None
    index = {(b["extra_info"]["stage"], b["extra_info"]["backend"]): b for b in benchmarks}
    checked = any((b["extra_info"].get("parity") or {}).get("ok") is not None for b in benchmarks)
    title = "★ fastest result whose output matches eager fp32" if checked else "parity not checked: nothing starred"
    table = Table(title=f"backends side by side ({title})")
    table.add_column("stage")
    for backend in backends:
        for column in ("time", "vs eager", "build", "parity"):
            table.add_column(f"{backend}\n{column}" if column == "time" else column, justify="right")
    for stage in STAGES:
        rows = {b: index.get((stage, b)) for b in backends}
        medians = {b: r["stats"]["median"] for b, r in rows.items() if r and r.get("stats")}
        valid = {b: medians[b] for b in medians if _valid(rows[b]["extra_info"])}
        fastest = min(valid, key=valid.get) if valid else None
        eager = medians.get("eager")
        cells = [stage]
        for backend in backends:
            row = rows[backend]
            if row is None:
                cells += ["-", "-", "-", "-"]
                continue
            info = row["extra_info"]
            median = medians.get(backend)
            time_cell = units.seconds(median) if median is not None else f"[red]{info['status']}[/red]"
            if info["status"] == "invalid":
                time_cell = f"[red]{units.seconds(median)} invalid[/red]"
            if backend == fastest:
                time_cell += " ★"
            # Speed does not depend on parity: an unchecked row shows its speedup; an invalid one does not.
            speedup = f"{eager / median:.2f}x" if eager and median and info["status"] == "ok" else "-"
            artifact = info.get("artifact") or {}
            build = f"{artifact.get('build_s', 0):.1f} s {artifact.get('cache', '')}".strip() if artifact else "-"
            cells += [time_cell, speedup, build, _parity_cell(info)]
        table.add_row(*cells)
    return table


def print_comparison(benchmarks: list[dict[str, Any]], console: Console | None = None) -> None:
    table = comparison_table(benchmarks)
    if table is None:
        return
    console = console or Console()
    console.print(table)
    console.print(
        "  build: compile / export / engine time, measured apart from the rounds; reused = loaded from the cache. "
        "parity: relative L2 error against eager fp32 on the same inputs",
        highlight=False,
    )
