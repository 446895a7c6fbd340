"""The calibrated time model: per-architecture factors, each host class's cost per launch, each policy's
effective link rate, the dequantization kernels' efficiency, and the band each class of figure validated.

Stored in ``sdshape/data/time_model.json``, which ``python maintainer/validate_projections.py --write``
rebuilds from the files it names (the H100 runs under ``tests/data/gpu-runs/`` and the calibration rows of
``public_figures.toml``); nothing in it is typed by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from sdshape.core.errors import choices_error
from sdshape.feasibility.catalog import GPU
from sdshape.feasibility.dequant import call_cost
from sdshape.feasibility.formats import WeightFormat
from sdshape.feasibility.policies import STAGES, Transfers, transfers
from sdshape.feasibility.static import ShapeStatic, StageStatic
from sdshape.feasibility.timing import ArchEfficiency, StageTime, stage_time

BACKENDS = ("eager", "compile")  # compile: torch.compile reduce-overhead (CUDA graphs): no host time
HOSTS = ("desktop", "server")
DEFAULT_HOST = "desktop"  # where consumer cards live; `fit --host server` for a data-center machine
CLASSES = ("resident", "offload", "format", "batch")


@dataclass(frozen=True)
class Fitted:
    """One calibrated number and where it came from."""

    value: float
    source: str


@dataclass
class TimeModel:
    hosts: dict[str, Fitted]  # seconds per kernel launch, by host class
    architectures: dict[str, ArchEfficiency]
    links: dict[str, Fitted] = field(default_factory=dict)  # policy -> its effective share of the link's rate
    dequant: Fitted = field(default_factory=lambda: Fitted(1.0, "not calibrated: the datasheet bandwidth"))
    bands: dict[str, tuple[float, float]] = field(default_factory=dict)  # class -> measured/projected range
    band_sources: dict[str, str] = field(default_factory=dict)

    def efficiency(self, gpu: GPU) -> tuple[ArchEfficiency, bool]:
        """The card's architecture's factor, and whether it was calibrated (else the mean of those that were)."""
        if gpu.architecture in self.architectures:
            return self.architectures[gpu.architecture], True
        factors = [e.factor for e in self.architectures.values()]
        mean = sum(factors) / len(factors)
        return ArchEfficiency(mean, f"no figure for {gpu.architecture}: the mean of the calibrated ones"), False

    def host(self, name: str) -> Fitted:
        if name not in self.hosts:
            raise choices_error("host", name, list(self.hosts))
        return self.hosts[name]

    def link(self, policy: str) -> Fitted:
        """A policy's effective share of the link's rated one-way rate (pageable staging, one copy per tensor,
        allocation); a policy with no figure of its own borrows the closest calibrated one and says so."""
        if policy in self.links:
            return self.links[policy]
        for other in _BORROW.get(policy, ()):
            if other in self.links:
                found = self.links[other]
                return Fitted(found.value, f"no figure for {policy}: {other}'s rate ({found.source})")
        return Fitted(1.0, "not calibrated: the link's rated speed")

    def band(self, classes: tuple[str, ...]) -> tuple[float, float]:
        """The widest band over the classes a projection belongs to (measured over projected seconds)."""
        found = [self.bands[c] for c in classes if c in self.bands] or [(1.0, 1.0)]
        return min(b[0] for b in found), max(b[1] for b in found)

    def to_json(self) -> dict[str, Any]:
        return {
            "hosts": {k: {"s_per_launch": v.value, "source": v.source} for k, v in self.hosts.items()},
            "architectures": {k: {"factor": v.factor, "source": v.source} for k, v in self.architectures.items()},
            "links": {k: {"efficiency": v.value, "source": v.source} for k, v in self.links.items()},
            "dequant": {"efficiency": self.dequant.value, "source": self.dequant.source},
            "bands": {k: list(v) for k, v in self.bands.items()},
            "band_sources": dict(self.band_sources),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TimeModel:
        return cls(
            hosts={k: Fitted(v["s_per_launch"], v["source"]) for k, v in data["hosts"].items()},
            architectures={k: ArchEfficiency(v["factor"], v["source"]) for k, v in data["architectures"].items()},
            links={k: Fitted(v["efficiency"], v["source"]) for k, v in data.get("links", {}).items()},
            dequant=Fitted(data["dequant"]["efficiency"], data["dequant"]["source"]),
            bands={k: (v[0], v[1]) for k, v in data.get("bands", {}).items()},
            band_sources=dict(data.get("band_sources", {})),
        )


# Policies without a figure of their own take the rate of the one that moves weights the same way.
_BORROW = {
    "group_offload_block": ("sequential_offload",),
    "group_offload_leaf": ("sequential_offload",),
    "group_offload_block_stream": ("group_offload_leaf_stream", "sequential_offload"),
    "group_offload_leaf_stream": ("group_offload_block_stream", "sequential_offload"),
    "text_encoders_dropped": ("model_offload",),
}


def bundled_time_model() -> TimeModel:
    return TimeModel.from_json(json.loads(resources.files("sdshape.data").joinpath("time_model.json").read_text()))


def classes_of(fmt: WeightFormat, policy: str, batch: int) -> tuple[str, ...]:
    """The validation classes a projection falls in: each brings its own band."""
    found = tuple(
        c
        for c, member in (("offload", policy != "all_resident"), ("format", fmt.quantized), ("batch", batch > 1))
        if member
    )
    return found or ("resident",)


@dataclass
class Projection:
    """Seconds for one prompt batch on one card, by stage, with what bounds it."""

    stages: dict[str, StageTime]
    steps: int
    batch: int
    moved: Transfers
    link_s: float  # transfer time not hidden behind compute
    hidden_link_s: float = 0.0  # transfer time a side stream overlapped with the loop's compute

    @property
    def loop_step_s(self) -> float:
        return self.stages["denoise_loop"].seconds

    @property
    def seconds_per_batch(self) -> float:
        return (
            self.stages["text_encoder"].seconds
            + self.steps * self.stages["denoise_loop"].seconds
            + self.stages["vae_decode"].seconds
            + self.link_s
        )

    @property
    def seconds_per_image(self) -> float:
        return self.seconds_per_batch / self.batch

    @property
    def bound(self) -> str:
        """What limits the batch: the link when transfers take half of it, else the loop's host or kernels."""
        if self.link_s > self.seconds_per_batch / 2:
            return "link"
        return self.stages["denoise_loop"].bound


def _dequant_s(stage: StageStatic, fmt: WeightFormat, gpu: GPU, efficiency: ArchEfficiency, dequant: float) -> float:
    """Kernel time one stage call spends dequantizing its quantized layers (memory-bound kernels)."""
    cost = call_cost(fmt)
    if cost is None or not stage.quantized_calls:
        return 0.0
    moved = cost.bytes_per_param * stage.quantized_params_per_call + cost.bytes_per_output * (
        stage.quantized_outputs_per_call
    )
    return moved / (gpu.bandwidth_gbs * 1e9 * efficiency.factor * dequant)


def _dequant_launches(stage: StageStatic, fmt: WeightFormat) -> int:
    cost = call_cost(fmt)
    return cost.launches * stage.quantized_calls if cost is not None else 0


def project(
    static: ShapeStatic,
    gpu: GPU,
    model: TimeModel,
    backend: str = "eager",
    policy: str = "all_resident",
    efficiency: ArchEfficiency | None = None,
    host: str = DEFAULT_HOST,
    fmt: WeightFormat | None = None,
) -> Projection:
    """Seconds for one call of the pipeline (``static.batch`` images) on ``gpu`` under ``policy``."""
    from sdshape.feasibility.formats import FORMATS

    fmt = fmt or FORMATS[static.precision]
    efficiency = efficiency or model.efficiency(gpu)[0]
    per_launch = model.host(host).value if backend == "eager" else 0.0
    stages = {}
    for name in STAGES:
        stage = static.stages[name]
        timed = stage_time(stage.trace, gpu, efficiency, per_launch, fp32=stage.dtype == "float32")
        if stage.repeats > 1:  # a tiled, sliced decode runs its traced tile once per tile and image
            timed = StageTime(timed.gpu_s * stage.repeats, timed.host_s * stage.repeats)
        if stage.quantized_calls:
            timed = StageTime(
                timed.gpu_s + _dequant_s(stage, fmt, gpu, efficiency, model.dequant.value),
                timed.host_s + _dequant_launches(stage, fmt) * per_launch,
            )
        stages[name] = timed
    moved = transfers(static, policy)
    if moved.total_bytes and gpu.pcie_bytes_per_s is None:
        raise ValueError(f"{gpu.name}: the catalog entry has no 'pcie'; an offload policy's time needs it")
    rate = (gpu.pcie_bytes_per_s or 1.0) * model.link(policy).value
    link_s = moved.total_bytes / rate
    hidden = 0.0
    if moved.overlapped and moved.loop_h2d_bytes:
        loop_link = moved.loop_h2d_bytes / rate
        loop_compute = static.steps * stages["denoise_loop"].seconds
        hidden = min(loop_link, loop_compute)
        link_s -= hidden
    return Projection(stages, static.steps, static.batch, moved, link_s, hidden)
