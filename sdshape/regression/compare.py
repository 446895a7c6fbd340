"""``sdshape compare BASE NEW``: a verdict per result id that noise cannot trigger.

Time: the raw rounds of both sides go through a two-sided Mann-Whitney U test
(no normality assumed; rounds of GPU kernels rarely are normal). A change
counts only if it is significant (p < alpha, ``--alpha``, 0.05 by default) *and*
at least the effect floor (default 5%). When the rounds are too few for any
outcome to reach p < alpha (3 against 3, say, whose smallest possible p is 0.1),
a change above the floor is ``undecided``, not a guess. Memory and energy have one reading per result: a
change beyond their own floors counts (memory also needs 16 MiB in absolute
terms). A status going from ok to oom, error or invalid is a change for the worse. A side timed while
its GPU was throttled (``sdshape.measurement.clocks``) is named in ``throttled``; the verdict is the same.

Verdicts are typed (:class:`Verdict`, one :class:`MetricVerdict` per metric) and written as JSON by
their fields (``compare --json``).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sdshape.core.bounds import FRACTION, SIGNIFICANCE
from sdshape.core.errors import UsageError
from sdshape.core.statistics import median, ratio
from sdshape.core.vocabulary import ID_FIELDS
from sdshape.result.fingerprint import fingerprint_diff
from sdshape.result.io import ResultFile
from sdshape.result.model import StageResult
from sdshape.result.records import Record

MEMORY_FLOOR_BYTES = 16 << 20


@dataclass(frozen=True)
class Floors:
    """The effect a change must reach to count (fractions), and the significance level for time."""

    time: float = 0.05
    memory: float = 0.05
    energy: float = 0.10
    alpha: float = 0.05  # Mann-Whitney U's p must be below this


@dataclass(kw_only=True)
class MetricVerdict(Record):
    """One metric's verdict: regression, improvement, unchanged or undecided, and why."""

    metric: str | None = None  # time | memory | energy | status
    verdict: str = (
        "unchanged"  # regression | improvement | unchanged | undecided | method_changed | status_change | ...
    )
    reason: str | None = None  # why, in words
    base: Any = None  # the base side's median time, memory figure, energy or status
    new: Any = None  # the new side's
    change: float | None = None  # new over base, minus 1
    p_value: float | None = None  # Mann-Whitney U, two-sided (time only)
    floor: float | None = None  # the effect a change must reach
    alpha: float | None = None  # the significance level (time only)
    base_rounds: int | None = None  # raw rounds compared (time only)
    run_to_run: float | None = None  # the series' run-to-run sigma the change was judged against (time only)
    new_rounds: int | None = None
    source: str | None = None  # memory: the figure compared
    flagged: list[str] = field(default_factory=list)  # memory figures left out for breaking a rule


@dataclass(kw_only=True)
class Verdict(MetricVerdict):
    """A result id's verdict: the deciding metric's fields, every metric's, and the statuses."""

    id: dict[str, Any] = field(default_factory=dict)  # the stable id both rows share
    base_status: str | None = None  # ok | oom | error | invalid
    new_status: str | None = None
    worse: bool | None = None  # a status change for the worse (ok -> oom, error, invalid)
    metrics: dict[str, MetricVerdict] = field(default_factory=dict)  # time, memory and energy, each judged
    # "base: throttled: hw_thermal_slowdown" per side timed under a power or thermal slowdown (verdict unchanged)
    throttled: list[str] = field(default_factory=list)

    @property
    def failing(self) -> bool:
        return self.verdict == "regression" or (self.verdict == "status_change" and bool(self.worse))


@dataclass
class Thresholds:
    """Default floors plus per-id overrides; the override matching the most id fields wins."""

    default: Floors = field(default_factory=Floors)
    overrides: list[tuple[dict[str, Any], dict[str, float]]] = field(default_factory=list)

    def for_id(self, id_dict: dict[str, Any]) -> Floors:
        best: tuple[int, dict[str, float]] | None = None
        for match, values in self.overrides:
            matches = all(id_dict.get(key) == value for key, value in match.items())
            if matches and (best is None or len(match) > best[0]):
                best = (len(match), values)
        if best is None:
            return self.default
        values = best[1]
        return replace(self.default, **values)


def load_thresholds(path: str | Path, default: Floors) -> Thresholds:
    """A TOML file of ``[[override]]`` tables: id fields to match, and any of the :class:`Floors`."""
    names = [f.name for f in fields(Floors)]
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--thresholds {path}: cannot read: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"--thresholds {path}: not TOML: {error}") from None
    overrides = []
    entries = data.get("override", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise UsageError(f"--thresholds {path}: override must be a list of [[override]] tables, got {entries!r}")
    for index, entry in enumerate(entries):
        unknown = set(entry) - set(ID_FIELDS) - set(names)
        if unknown:
            raise UsageError(
                f"--thresholds {path}: override #{index + 1} has unknown keys {sorted(unknown)}; "
                f"valid: {', '.join([*ID_FIELDS, *names])}"
            )
        values = {k: entry[k] for k in names if k in entry}
        for key, value in values.items():  # the rules of the flags
            (SIGNIFICANCE if key == "alpha" else FRACTION).check(
                f"--thresholds {path}: override #{index + 1}: {key}", value
            )
        if not values:
            raise UsageError(f"--thresholds {path}: override #{index + 1} sets none of {', '.join(names)}")
        overrides.append(({k: entry[k] for k in ID_FIELDS if k in entry}, values))
    if set(data) - {"override"}:
        raise UsageError(f"--thresholds {path}: unknown tables {sorted(set(data) - {'override'})}; valid: override")
    return Thresholds(default, overrides)


def smallest_p(n: int, m: int) -> float:
    """The smallest two-sided p-value an exact Mann-Whitney U test can give for these sample sizes.

    2 / C(n+m, n), in logarithms: the binomial itself has hundreds of thousands of digits for the rounds
    of a long run (620,000 a side took most of a minute and 600 MB as an integer)."""
    log_ways = math.lgamma(n + m + 1) - math.lgamma(n + 1) - math.lgamma(m + 1)
    return min(1.0, 2 * math.exp(-log_ways)) if log_ways < 700 else 0.0


def relative_change(new: float, base: float) -> float:
    """new / base - 1; infinite (a change beyond any floor, written as null in JSON) where the quotient is
    not a finite number: a base of 0, or one so small that the quotient overflows."""
    if base <= 0:
        return math.inf if new > 0 else 0.0
    quotient = ratio(new, base)
    return quotient - 1 if quotient is not None else math.inf


RUN_TO_RUN_Z = 5.0  # sigmas of run-to-run noise a change must stand clear of: 3 let 1.95% of A/A pairs through, 5 0.57%


def compare_time(
    base: list[float], new: list[float], floor: float, alpha: float, run_to_run: float | None = None
) -> MetricVerdict:
    """Time: Mann-Whitney U on the raw rounds, the effect floor, and (when the series' run-to-run sigma
    is known, from the store's history) the change against the noise between two runs: rounds within one
    process cannot see how far another process's level lands (an A/A test on a shared CPU found 72% of
    pairs "significant" on rounds alone)."""
    from scipy.stats import mannwhitneyu

    result = MetricVerdict(metric="time", floor=floor, alpha=alpha, base_rounds=len(base), new_rounds=len(new))
    if not base or not new:
        return replace(result, verdict="undecided", reason="no raw rounds on one side")
    base_median, new_median = median(base), median(new)
    change = relative_change(new_median, base_median)
    result = replace(result, base=base_median, new=new_median, change=change)
    if abs(change) < floor:
        return replace(result, reason=f"below the {floor:.0%} floor")
    if smallest_p(len(base), len(new)) > alpha:
        reason = f"{len(base)} vs {len(new)} rounds cannot reach p < {alpha:g} (need more rounds on each side)"
        return replace(result, verdict="undecided", reason=reason)
    p_value = float(mannwhitneyu(new, base, alternative="two-sided").pvalue)
    result = replace(result, p_value=p_value)
    if p_value >= alpha:
        return replace(result, reason=f"not significant (p = {p_value:.3f})")
    if run_to_run is not None:
        z = abs(change) / (math.sqrt(2) * run_to_run) if run_to_run > 0 else math.inf
        result = replace(result, run_to_run=run_to_run)
        if z < RUN_TO_RUN_Z:
            reason = (
                f"within run-to-run noise ({run_to_run:.1%} a run: z = {z:.1f} < {RUN_TO_RUN_Z:g}; p = {p_value:.3g})"
            )
            return replace(result, reason=reason)
    return replace(result, verdict="regression" if change > 0 else "improvement", reason=f"p = {p_value:.3g}")


def compare_scalar(
    metric: str, base: float | None, new: float | None, floor: float, absolute: float = 0.0
) -> MetricVerdict:
    result = MetricVerdict(metric=metric, floor=floor, base=base, new=new)
    if base is None or new is None:
        return replace(result, reason="not measured on both sides")
    change = relative_change(new, base)
    result = replace(result, change=change)
    if abs(change) < floor or abs(new - base) < absolute:
        return replace(result, reason="below the floor")
    return replace(result, verdict="regression" if change > 0 else "improvement", reason="beyond the floor")


def method_checked(metric: str, verdict: MetricVerdict, base: StageResult, new: StageResult) -> MetricVerdict:
    """A change measured under two method versions is "method changed", never a regression (when both
    sides have a figure: a metric neither side measured has no method to compare)."""
    if verdict.base is None or verdict.new is None:
        return verdict
    held = [residency(row) for row in (base, new)]
    if held[0] != held[1]:  # offload moves weights inside the timed call: a policy change is no regression
        reason = f"residency {held[0]} -> {held[1]}: the figures are not comparable"
        return replace(verdict, verdict="method_changed", reason=reason)
    before, after = base.conditions.methods.get(metric), new.conditions.methods.get(metric)
    if before == after:
        return verdict
    reason = f"{metric} method {before} -> {after}: the figures are not comparable (sdshape.core.vocabulary.METHODS)"
    return replace(verdict, verdict="method_changed", reason=reason)


def residency(row: StageResult) -> str:
    """How a row held its weights: the policy, and the VAE's tiling and slicing."""
    c = row.conditions
    return c.policy + "".join(f" +{name}" for name, on in (("tiling", c.vae_tiling), ("slicing", c.vae_slicing)) if on)


def compare_rows(base: StageResult, new: StageResult, floors: Floors, run_to_run: float | None = None) -> Verdict:
    entry = {"id": base.id.as_dict(), "base_status": base.status, "new_status": new.status}
    if base.status != new.status:
        worse = base.status == "ok"
        return Verdict(
            **entry, verdict="status_change", metric="status", base=base.status, new=new.status, worse=worse,
            reason=new.message if worse else base.message,
        )  # fmt: skip
    if base.status != "ok":
        return Verdict(**entry, metric="status", base=base.status, new=new.status, reason="failed on both sides")
    base_memory, _, source = base.standing_peak()
    new_memory, _, new_source = new.standing_peak()
    memory = compare_scalar("memory", base_memory, new_memory, floors.memory, MEMORY_FLOOR_BYTES)
    flagged = [f"{side}: {row.memory.error}" for side, row in (("base", base), ("new", new)) if row.memory.error]
    if source != new_source and base_memory is not None and new_memory is not None:
        memory = replace(memory, verdict="unchanged", reason=f"different sources: {source} vs {new_source}")
    elif flagged and (base_memory is None or new_memory is None):
        memory = replace(memory, verdict="unchanged", reason="skipped, memory flagged: " + "; ".join(flagged))
    metrics = {
        "time": compare_time(base.timing.rounds_s, new.timing.rounds_s, floors.time, floors.alpha, run_to_run),
        "memory": replace(memory, source=source, flagged=flagged),
        "energy": compare_scalar("energy", base.energy.joules_per_call, new.energy.joules_per_call, floors.energy),
    }
    metrics = {name: method_checked(name, verdict, base, new) for name, verdict in metrics.items()}
    for verdict in ("regression", "improvement", "undecided", "method_changed"):
        chosen = next((m for m in metrics.values() if m.verdict == verdict), None)
        if chosen is not None:
            break
    else:
        verdict, chosen = "unchanged", metrics["time"]
    deciding = {name: getattr(chosen, name) for name in ("metric", "base", "new", "change", "p_value", "reason")}
    # A note, not a verdict: a throttled side's time holds its GPU's power or temperature then, as well as the code.
    throttled = [f"{side}: {row.throttled}" for side, row in (("base", base), ("new", new)) if row.throttled]
    return Verdict(**entry, **deciding, verdict=verdict, metrics=metrics, throttled=throttled)


def environment_diff(base: ResultFile, new: ResultFile) -> list[dict[str, Any]]:
    return fingerprint_diff(base.machine_info, new.machine_info)


def compare_files(
    base: ResultFile,
    new: ResultFile,
    thresholds: Thresholds,
    noise: Callable[[StageResult, dict[str, Any]], float | None] | None = None,
) -> list[Verdict]:
    """Verdicts per id; ``noise`` gives a row's series run-to-run sigma (from the store's history), if known."""
    results = []
    for key, row in base.rows.items():
        if key in new.rows:
            floors = thresholds.for_id(row.id.as_dict())
            results.append(compare_rows(row, new.rows[key], floors, noise(row, base.machine_info) if noise else None))
        else:
            results.append(Verdict(id=row.id.as_dict(), verdict="only_base", metric=None))
    results += [Verdict(id=row.id.as_dict(), verdict="only_new", metric=None) for key, row in new.rows.items()
                if key not in base.rows]  # fmt: skip
    return results


def failing(results: list[Verdict]) -> bool:
    """Exit status 1: a regression, or a status that got worse."""
    return any(result.failing for result in results)
