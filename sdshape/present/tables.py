"""The tables ``sdshape run`` prints: the allocation table per backend, and the backends side by side.

Both read :class:`~sdshape.result.model.StageResult` only. A memory figure that
broke a rule prints as ``flagged``, never as a number; which figure stands for
a stage's memory is :meth:`Memory.standing_peak`'s decision, not this module's.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from sdshape.core import units
from sdshape.core.vocabulary import STAGES
from sdshape.result.model import Figure, StageResult, caption_label
from sdshape.result.records import Residual

ALLOCATION_COLUMNS = (
    "stage", "params", "params %", "time", "±CI", "IQR", "time %", "weights", "peak mem", "activations", "J/call",
    "J %", "FLOPs", "TFLOP/s", "status",
)  # fmt: skip


CFG_NOTE = ", CFG batch x2"


def guidance_label(mode: str | None, scale: float | None) -> str:
    """How the denoiser was guided: ``CFG 7.5`` (also for files that predate the field), ``guidance 3.5
    (distilled)``, or ``no guidance``."""
    if mode == "distilled":
        return f"guidance {scale} (distilled, one pass)"
    if mode == "none":
        return "no guidance"
    return f"CFG {scale}"


def ci_cell(result: StageResult) -> str:
    """Half the median's 95% confidence interval, as a share of it ("-": too few rounds to bracket it)."""
    rel = result.timing.rel_ci
    return f"±{rel:.1%}" if rel is not None else "-"


def status_cell(result: StageResult) -> str:
    status = result.status if result.status == "ok" else f"[red]{result.status}[/red]"
    busy = result.kernels.busy_fraction if result.kernels else None
    if result.host_bound and busy is not None:
        status += f" [yellow]host-bound: GPU busy {busy:.0%}[/yellow]"
    if result.throttled:
        status += f" [red]{result.throttled}[/red]"
    return status


def memory_cell(figure: Figure, caption_source: str, result: StageResult) -> str:
    """A memory figure as printed: flagged (never a number) when it broke a rule, its source when unusual."""
    if figure.bytes is None:
        return "[red]flagged[/red]" if result.memory.error else "-"
    return units.size(figure.bytes) + ("" if figure.label == caption_source else f" ({figure.label})")


def residency_label(c: Any) -> str:
    """The policy a run held its weights under (with the VAE's tiling and slicing), as the conditions say it."""
    vae = " and ".join(name for name, on in (("tiling", c.vae_tiling), ("slicing", c.vae_slicing)) if on)
    return f"{c.policy} + VAE {vae} · " if vae else f"{c.policy} · "


def conditions(result: StageResult) -> str:
    i, c, t = result.id, result.conditions, result.timing
    if t.stopping is not None and t.stopping.target_ci is not None:
        rounds = f"rounds until the median's 95% CI is within {t.stopping.target_ci:.0%} (per stage)"
    else:
        rounds = f"{len(t.rounds_s)} timed rounds"
    return (
        f"{i.shape} · {i.backend} · {i.precision}"
        f"{f' (VAE {c.vae_precision}: force_upcast)' if c.vae_precision else ''} · batch {i.batch} · "
        f"{i.resolution}x{i.resolution} · "
        f"{i.steps} steps · {guidance_label(c.guidance, c.guidance_scale)} · {residency_label(c)}"
        f"{rounds} after {t.warmup_rounds} warm-up · timer {t.timer} · "
        f"{c.device_name}"
    )


def allocation_table(results: list[StageResult], title: str | None = None) -> Table:
    by_stage = {result.stage: result for result in results}
    first = next(iter(by_stage.values()))
    memory_source = caption_label(first.device)
    activation_source = first.activations().label
    context = first.memory.figures.cuda_context_bytes
    context_note = f" (CUDA context of {units.size(context)} not included)" if context else ""
    caption = (
        f"{conditions(first)}\ntime: median of timed rounds · peak mem: {memory_source}, over the pre-load "
        f"baseline{context_note} · activations: {activation_source} (weights resident)"
    )
    table = Table(title=title, caption=caption, caption_justify="left")
    for column in ALLOCATION_COLUMNS:
        table.add_column(column, justify="left" if column in ("stage", "status") else "right", no_wrap=True)
    for stage in STAGES:
        if stage not in by_stage:
            continue
        result = by_stage[stage]
        energy, tflops, median = result.energy.joules_per_call, result.cost.tflops_achieved, result.median
        if stage == "pipeline":
            table.add_section()
        table.add_row(
            stage,
            units.count(result.cost.params),
            units.share(result.cost.param_share),
            units.seconds(median),
            ci_cell(result),
            units.seconds(result.timing.iqr) if result.timing.stats else "-",
            units.share(result.timing.time_share),
            units.size(result.memory.figures.weights_bytes),
            memory_cell(result.standing_peak(), memory_source, result),
            memory_cell(result.activations(), activation_source, result),
            f"{energy:.2f} J" if energy is not None else "n/a",
            units.share(result.energy.share),
            units.count(result.cost.flops),
            f"{tflops:.3f}" if tflops is not None else "-",
            status_cell(result),
        )
    return table


def kernel_table(results: list[StageResult]) -> Table | None:
    """Where in each stage the time goes: each kernel class's share, the GPU's busy fraction, the top kernel."""
    from sdshape.measurement.profiling import CLASSES, class_shares

    profiled = [r for r in results if class_shares(r.kernels)]
    if not profiled:
        return None
    source = profiled[0].kernels.source  # type: ignore[union-attr]
    table = Table(title=f"where in each stage the time goes ({source})", caption_justify="left")
    for column in ("stage", "backend", "GPU busy", *CLASSES, "per call", "longest kernel"):
        table.add_column(column, justify="left" if column in ("stage", "backend", "longest kernel") else "right")
    for result in profiled:
        kernels = result.kernels
        shares = class_shares(kernels) or {}
        busy = kernels.busy_fraction
        busy_cell = (
            "n/a" if busy is None else f"{busy:.0%}" + (" [yellow]host-bound[/yellow]" if result.host_bound else "")
        )
        top = (kernels.top[0].name if kernels.top else None) or "-"
        table.add_row(
            result.stage,
            result.id.backend,
            busy_cell,
            *(units.share(shares.get(kind)) for kind in CLASSES),
            units.seconds(kernels.kernel_s),
            top[:60],
        )
    return table


def residual_line(residual: Residual) -> str:
    """The pipeline against its stages: a finding when inside the spread, a warning when not."""
    summed, value = units.seconds(residual.sum_of_stages_s), units.seconds(residual.residual_s)
    share = units.share(residual.residual_share)
    spread = residual.combined_spread_s
    if spread is None:  # a file written before the spread was recorded
        return f"pipeline vs sum of stages: {summed} summed, residual {value} ({share})"
    if residual.within_spread:
        return (
            f"pipeline vs sum of stages: {summed} summed, residual {value} ({share}), "
            f"within the combined spread of {units.seconds(spread)}"
        )
    slower = residual.stages_slower_than_pipeline
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


def host_line(results: list[StageResult]) -> str | None:
    """Under an offload policy on a GPU, each stage's host RSS peak over the baseline: the weights the policy
    keeps in host memory are there, not in the peak mem column (None: all resident, or on the CPU, where
    peak mem already is host RSS)."""
    first = results[0] if results else None
    if first is None or first.device != "cuda" or first.conditions.policy == "all_resident":
        return None
    peaks = [f"{r.stage} {units.size(r.memory.figures.host_rss_peak_bytes)}" for r in results]
    return f"host RSS peak under {first.conditions.policy} (offloaded weights live there): {' · '.join(peaks)}"


def energy_lines(results: list[StageResult]) -> list[str]:
    """How energy was measured, or why it was not."""
    lines = []
    for result in results:
        method = result.energy.method or {}
        if result.energy.joules_per_call is not None and method.get("method"):
            how = "NVML energy counter" if method["method"] == "counter_window" else "power readings integrated"
            lines.append(f"{result.stage} energy: {how} over {method['calls']} calls in {method['window_s']:.2f} s")
        elif result.status == "ok" and result.energy.note and result.device == "cuda":
            lines.append(f"{result.stage} energy n/a: {result.energy.note}")
    first = results[0] if results else None
    if first is not None and first.device != "cuda" and first.energy.note:
        lines.append(f"energy n/a: {first.energy.note}")
    return lines


def _clock_range(spreads: list[dict[str, float]]) -> str:
    """Several windows' min/median/max as one: the median of their medians, the outermost range."""
    low, high = min(c["min"] for c in spreads), max(c["max"] for c in spreads)
    return f"median {sorted(c['median'] for c in spreads)[len(spreads) // 2]:.0f} MHz (range {low:.0f}-{high:.0f})"


def clock_line(results: list[StageResult]) -> str:
    """SM and memory clocks while timed and whether any stage was throttled, as nvbench prints it."""
    clocks = [r.conditions.sm_clock_mhz for r in results if r.conditions.sm_clock_mhz]
    if not clocks:
        record = next((r.conditions.clocks for r in results if r.conditions.clocks and r.conditions.clocks.note), None)
        return f"SM clock: n/a: {record.note if record else 'no NVIDIA GPU in use'}"
    memory = [r.conditions.clocks.mem_mhz for r in results if r.conditions.clocks and r.conditions.clocks.mem_mhz]
    throttled = [f"{r.stage} {r.throttled.removeprefix('throttled: ')}" for r in results if r.throttled]
    verdict = "not throttled"
    if throttled:
        verdict = f"[red]throttled ({'; '.join(throttled)}): do not trust these times[/red]"
    line = f"SM clock under load: {_clock_range(clocks)}"
    return line + (f" · memory clock {_clock_range(memory)}" if memory else "") + f" · {verdict}"


def footnotes(results: list[StageResult]) -> list[str]:
    lines: list[str] = []
    for result in results:
        steps = result.timing.step_times
        if result.stage == "denoise_loop" and steps:
            cfg = CFG_NOTE if result.conditions.cfg is not False else ""
            lines.append(
                f"denoise_loop per step: first {units.seconds(steps['first_s'])}, "
                f"others median {units.seconds(steps['rest_median_s'])} ({result.id.steps} steps{cfg})"
            )
        if result.stage == "pipeline" and result.timing.residual:
            lines.append(residual_line(result.timing.residual))
        stopping = result.timing.stopping
        if stopping is not None and stopping.criterion in ("max_rounds", "max_time"):
            reached = f"{stopping.rel_ci:.1%}" if stopping.rel_ci is not None else "no interval yet"
            lines.append(
                f"{result.stage}: rounds stopped at the {stopping.criterion.replace('_', ' ')} cap after "
                f"{stopping.rounds} rounds, CI {reached} (target {stopping.target_ci:.1%}): "
                "less stable than asked"
            )
        if result.status != "ok":
            lines.append(f"{result.stage}: {result.status}: {result.message}")
        if result.memory.error:
            lines.append(f"[red]{result.stage}: memory flagged, not printed[/red]: {result.memory.error}")
    first = results[0] if results else None
    lines += [f"composition: {note}" for note in (first.conditions.composition_notes if first else [])]
    lines += energy_lines(results)
    host = host_line(results)
    if host is not None:
        lines.append(host)
    lines.append(clock_line(results))
    lines.append("time %, energy %: of text_encoder + denoise_loop + vae_decode (one image); FLOPs: 1 MAC = 2 FLOPs")
    if first is not None and first.device == "cpu":
        lines.append("peak mem on the CPU: host RSS growth over the pre-load baseline (no VRAM)")
    return lines


def print_allocation(results: list[StageResult], console: Console | None = None) -> None:
    console = console or Console()
    console.print(allocation_table(results, title="sdshape: where the parameters, time, memory and energy go"))
    for line in footnotes(results):
        console.print(f"  {line}", highlight=False)
    kernels = kernel_table(results)
    if kernels is not None:
        console.print(kernels)
        note = next((r.kernels.busy_note for r in results if r.kernels and r.kernels.busy_note), None)
        console.print(
            "  one profiled round per stage, outside the timed rounds; shares of the kernel time; host-bound: "
            f"the GPU was busy less than 80% of the round{f' ({note})' if note else ''}",
            highlight=False,
        )
