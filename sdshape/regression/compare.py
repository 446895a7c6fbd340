"""``sdshape compare BASE NEW``: a verdict per result id that noise cannot trigger.

Time: the raw rounds of both sides go through a two-sided Mann-Whitney U test
(no normality assumed; rounds of GPU kernels rarely are normal). A change
counts only if it is significant (p < 0.05) *and* at least the effect floor
(default 5%). When the rounds are too few for any outcome to reach p < 0.05
(3 against 3, say, whose smallest possible p is 0.1), a change above the floor is
``undecided``, not a guess. Memory and energy have one reading per result: a
change beyond their own floors counts (memory also needs 16 MiB in absolute
terms). A status going from ok to oom, error or invalid is a change for the worse.
"""

from __future__ import annotations

import math
import statistics
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdshape.core.errors import UsageError
from sdshape.core.vocabulary import ID_FIELDS
from sdshape.result.fingerprint import fingerprint_diff
from sdshape.result.io import ResultFile
from sdshape.result.model import StageResult

ALPHA = 0.05
MEMORY_FLOOR_BYTES = 16 << 20


@dataclass(frozen=True)
class Floors:
    time: float = 0.05
    memory: float = 0.05
    energy: float = 0.10


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
        return Floors(
            time=values.get("time", self.default.time),
            memory=values.get("memory", self.default.memory),
            energy=values.get("energy", self.default.energy),
        )


def load_thresholds(path: str | Path, default: Floors) -> Thresholds:
    """A TOML file of ``[[override]]`` tables: id fields to match, and time/memory/energy floors."""
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
        unknown = set(entry) - set(ID_FIELDS) - {"time", "memory", "energy"}
        if unknown:
            raise UsageError(
                f"--thresholds {path}: override #{index + 1} has unknown keys {sorted(unknown)}; "
                f"valid: {', '.join(ID_FIELDS)}, time, memory, energy"
            )
        values = {k: entry[k] for k in ("time", "memory", "energy") if k in entry}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 10:
                raise UsageError(f"--thresholds {path}: override #{index + 1}: {key} = {value!r} is not a fraction")
        if not values:
            raise UsageError(f"--thresholds {path}: override #{index + 1} sets none of time, memory, energy")
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


def compare_time(base: list[float], new: list[float], floor: float) -> dict[str, Any]:
    from scipy.stats import mannwhitneyu

    result: dict[str, Any] = {"metric": "time", "floor": floor, "base_rounds": len(base), "new_rounds": len(new)}
    if not base or not new:
        return {**result, "verdict": "undecided", "reason": "no raw rounds on one side"}
    base_median, new_median = statistics.median(base), statistics.median(new)
    change = new_median / base_median - 1 if base_median > 0 else math.inf
    result.update(base=base_median, new=new_median, change=change, p_value=None)
    if abs(change) < floor:
        return {**result, "verdict": "unchanged", "reason": f"below the {floor:.0%} floor"}
    if smallest_p(len(base), len(new)) > ALPHA:
        return {
            **result,
            "verdict": "undecided",
            "reason": f"{len(base)} vs {len(new)} rounds cannot reach p < {ALPHA} (need at least 4 each)",
        }
    p_value = float(mannwhitneyu(new, base, alternative="two-sided").pvalue)
    result["p_value"] = p_value
    if p_value >= ALPHA:
        return {**result, "verdict": "unchanged", "reason": f"not significant (p = {p_value:.3f})"}
    return {**result, "verdict": "regression" if change > 0 else "improvement", "reason": f"p = {p_value:.3g}"}


def compare_scalar(metric: str, base: float | None, new: float | None, floor: float, absolute: float = 0.0) -> dict:
    result: dict[str, Any] = {"metric": metric, "floor": floor, "base": base, "new": new, "p_value": None}
    if base is None or new is None:
        return {**result, "verdict": "unchanged", "change": None, "reason": "not measured on both sides"}
    change = new / base - 1 if base > 0 else (math.inf if new > 0 else 0.0)
    result["change"] = change
    if abs(change) < floor or abs(new - base) < absolute:
        return {**result, "verdict": "unchanged", "reason": "below the floor"}
    return {**result, "verdict": "regression" if change > 0 else "improvement", "reason": "beyond the floor"}


def compare_rows(base: StageResult, new: StageResult, floors: Floors) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": base.id.as_dict(), "base_status": base.status, "new_status": new.status}
    if base.status != new.status:
        worse = base.status == "ok"
        return {
            **entry,
            "verdict": "status_change",
            "metric": "status",
            "base": base.status,
            "new": new.status,
            "change": None,
            "p_value": None,
            "worse": worse,
            "reason": new.message if worse else base.message,
        }
    if base.status != "ok":
        return {
            **entry,
            "verdict": "unchanged",
            "metric": "status",
            "base": base.status,
            "new": new.status,
            "change": None,
            "p_value": None,
            "reason": "failed on both sides",
        }
    base_memory, _, source = base.standing_peak()
    new_memory, _, new_source = new.standing_peak()
    memory = compare_scalar("memory", base_memory, new_memory, floors.memory, MEMORY_FLOOR_BYTES)
    flagged = [f"{side}: {row.memory.error}" for side, row in (("base", base), ("new", new)) if row.memory.error]
    if source != new_source and base_memory is not None and new_memory is not None:
        memory = {**memory, "verdict": "unchanged", "reason": f"different sources: {source} vs {new_source}"}
    elif flagged and (base_memory is None or new_memory is None):
        memory = {**memory, "verdict": "unchanged", "reason": "skipped, memory flagged: " + "; ".join(flagged)}
    if flagged:
        memory["flagged"] = flagged  # figures that broke a rule were left out; this says which and why
    metrics = {
        "time": compare_time(base.timing.rounds_s, new.timing.rounds_s, floors.time),
        "memory": {**memory, "source": source},
        "energy": compare_scalar("energy", base.energy.joules_per_call, new.energy.joules_per_call, floors.energy),
    }
    for verdict in ("regression", "improvement", "undecided"):
        chosen = next((m for m in metrics.values() if m["verdict"] == verdict), None)
        if chosen is not None:
            break
    else:
        verdict, chosen = "unchanged", metrics["time"]
    return {
        **entry,
        "verdict": verdict,
        "metric": chosen["metric"],
        "base": chosen.get("base"),
        "new": chosen.get("new"),
        "change": chosen.get("change"),
        "p_value": chosen.get("p_value"),
        "reason": chosen.get("reason"),
        "metrics": metrics,
    }


def environment_diff(base: ResultFile, new: ResultFile) -> list[dict[str, Any]]:
    return fingerprint_diff(base.machine_info, new.machine_info)


def compare_files(base: ResultFile, new: ResultFile, thresholds: Thresholds) -> list[dict[str, Any]]:
    results = []
    for key, row in base.rows.items():
        if key in new.rows:
            results.append(compare_rows(row, new.rows[key], thresholds.for_id(row.id.as_dict())))
        else:
            results.append(_one_sided("only_base", row))
    results += [_one_sided("only_new", row) for key, row in new.rows.items() if key not in base.rows]
    return results


def _one_sided(verdict: str, row: StageResult) -> dict[str, Any]:
    return {
        "id": row.id.as_dict(),
        "verdict": verdict,
        "metric": None,
        "base": None,
        "new": None,
        "change": None,
        "p_value": None,
        "reason": None,
    }


def failing(results: list[dict[str, Any]]) -> bool:
    """Exit status 1: a regression, or a status that got worse."""
    return any(r["verdict"] == "regression" or (r["verdict"] == "status_change" and r.get("worse")) for r in results)
