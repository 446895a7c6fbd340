"""The allocation table: per stage, parameter share next to time, memory and energy shares."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from sdshape import units
from sdshape.options import STAGES


def _peak_memory(info: dict[str, Any]) -> tuple[int | None, str]:
    memory = info.get("memory") or {}
    if info.get("device") == "cuda":
        if memory.get("nvml_process_peak_bytes") is not None:
            return memory["nvml_process_peak_bytes"], "NVML process"
        return memory.get("torch_reserved_peak_bytes"), "torch reserved"
    return memory.get("host_rss_peak_bytes"), "host RSS"


def _activations(info: dict[str, Any]) -> int | None:
    memory = info.get("memory") or {}
    if info.get("device") == "cuda":
        return memory.get("torch_activation_peak_bytes")
    return memory.get("host_rss_rise_bytes")


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
    memory_source = _peak_memory(first)[1]
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
    activation_source = "torch allocator" if first.get("device") == "cuda" else "host RSS"
    table.caption = (
        f"{table.caption}\ntime: median of timed rounds · peak mem: {memory_source}, over the pre-load baseline · "
        f"activations: {activation_source} peak over the level before the stage (weights resident)"
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
            units.size(_peak_memory(info)[0]),
            units.size(_activations(info)),
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
            residual = info["residual"]
            lines.append(
                f"pipeline vs sum of stages: {units.seconds(residual['sum_of_stages_s'])} summed, "
                f"residual {units.seconds(residual['residual_s'])} ({units.share(residual['residual_share'])})"
            )
        if info["status"] != "ok":
            lines.append(f"{info['stage']}: {info['status']}: {info.get('message')}")
    first = benchmarks[0]["extra_info"] if benchmarks else {}
    lines += [f"composition: {note}" for note in first.get("composition_notes") or []]
    if first.get("energy_j") is None and first.get("energy_note"):
        lines.append(f"energy n/a: {first['energy_note']}")
    lines.append("time %, energy %: of text_encoder + unet_loop + vae_decode (one image); FLOPs: 1 MAC = 2 FLOPs")
    if first.get("device") == "cpu":
        lines.append("peak mem on the CPU: host RSS growth over the pre-load baseline (no VRAM)")
    return lines


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
    table = Table(title="backends side by side (★ fastest result whose output matches eager fp32)")
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
            speedup = f"{eager / median:.2f}x" if eager and median and backend in valid else "-"
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
