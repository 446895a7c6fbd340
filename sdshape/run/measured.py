"""What a session hands on for one stage: :class:`MeasuredStage`, a value, with the :class:`SessionContext`
it was measured in.

A session reads everything that touches the machine (the sampler's window, NVML's clock settings, the
pages of memory-mapped weights, parity against the reference, energy) while the stage is resident, and
puts it in these two values; :func:`sdshape.run.recording.result_of` turns them into the row without
reading anything else, so a row can be built, and tested, from values alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sdshape.backends.base import Artifact
from sdshape.measurement.energy import EnergyReading
from sdshape.measurement.measure import Outcome
from sdshape.models.build import BuiltShape
from sdshape.models.wiring import StageFacts
from sdshape.result.records import Baseline, Kernels, Parity, VramCap


@dataclass(frozen=True)
class SessionContext:
    """The session a stage was measured in, as it stood when the stage was recorded."""

    backend_label: str  # as shown in results, e.g. "compile:reduce-overhead"
    backend_name: str  # the registered backend, e.g. "compile"
    backend_options: Mapping[str, Any]  # that backend's options in this session
    environment: Mapping[str, Any]  # the fingerprint (``sdshape.measurement.environment``); empty: not read
    nvml_reason: str | None  # why NVML is unavailable (None: it is available)
    nvml_available: bool
    clock_settings: Mapping[str, Any]  # application clocks and persistence mode; empty without NVML
    sampler_interval_s: float
    built: BuiltShape | None  # None: the build failed
    facts: Mapping[str, StageFacts]  # per stage, and "pipeline": parameters, weights, FLOPs
    artifacts: Mapping[str, Artifact]  # per component kind: how its runner was made
    prepare_s: float  # the backend's preparation (compile, export, engine build), in all
    resident_weights_bytes: int | None  # the least any peak of this session can hold
    cuda_context_bytes: int | None
    torch_reserved_at_baseline: int | None  # what torch's allocator held when the baseline was read
    baseline: Baseline | None  # whether memory was back down when the baseline was read
    vram_cap: VramCap | None  # --vram-cap's emulated card (``fits`` is the stage's, set in its row)


@dataclass(frozen=True)
class MeasuredStage:
    """One stage as measured: the rounds' outcome and every reading taken while the stage was resident."""

    context: SessionContext
    outcome: Outcome
    status: str  # the outcome's, or ``invalid`` when parity failed
    message: str | None
    parity: Parity | None  # None: not checked
    energy: EnergyReading | None  # None: not measured (``context.nvml_reason`` says why)
    stats: dict[str, Any] | None  # the timed rounds' statistics (pytest-benchmark's, or our own rounds')
    kernels: Kernels | None = None  # the profiled round (--profile)
    weights_unpaged_bytes: int | None = None  # memory-mapped weights not in memory after the window (CPU)
    timer: str | None = None  # the wall-clock timer that timed the rounds, when not the outcome's own

    @property
    def stage(self) -> str:
        return self.outcome.stage
