"""The calibrated time model: per-architecture factors, the host's cost per launch, the validated band.

Stored in ``sdshape/data/time_model.json``, which ``python bench/validate_projections.py --write``
rebuilds from the files it names (the H100 runs under ``tests/data/gpu-runs/`` and the calibration rows of
``public_figures.toml``); nothing in it is typed by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from sdshape.feasibility.catalog import GPU
from sdshape.feasibility.policies import STAGES, link_bytes_per_image
from sdshape.feasibility.static import ShapeStatic
from sdshape.feasibility.timing import ArchEfficiency, StageTime, stage_time

BACKENDS = ("eager", "compile")  # compile: torch.compile reduce-overhead (CUDA graphs): no host time


@dataclass
class TimeModel:
    host_s_per_launch: float
    host_source: str
    architectures: dict[str, ArchEfficiency]
    band: tuple[float, float]  # measured/projected over the validation figures: [lowest, highest]
    band_source: str

    def efficiency(self, gpu: GPU) -> tuple[ArchEfficiency, bool]:
        """The card's architecture's factor, and whether it was calibrated (else the mean of those that were)."""
        if gpu.architecture in self.architectures:
            return self.architectures[gpu.architecture], True
        factors = [e.factor for e in self.architectures.values()]
        mean = sum(factors) / len(factors)
        return ArchEfficiency(mean, f"no figure for {gpu.architecture}: the mean of the calibrated ones"), False

    def to_json(self) -> dict[str, Any]:
        return {
            "host_s_per_launch": self.host_s_per_launch,
            "host_source": self.host_source,
            "architectures": {k: {"factor": v.factor, "source": v.source} for k, v in self.architectures.items()},
            "band": list(self.band),
            "band_source": self.band_source,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TimeModel:
        archs = {k: ArchEfficiency(v["factor"], v["source"]) for k, v in data["architectures"].items()}
        return cls(data["host_s_per_launch"], data["host_source"], archs, tuple(data["band"]), data["band_source"])  # type: ignore[arg-type]


def bundled_time_model() -> TimeModel:
    return TimeModel.from_json(json.loads(resources.files("sdshape.data").joinpath("time_model.json").read_text()))


@dataclass
class Projection:
    """Seconds per image on one card, by stage, with what bounds it."""

    stages: dict[str, StageTime]
    steps: int
    link_bytes: int  # weights the policy moves over PCIe for one image
    link_s: float

    @property
    def loop_step_s(self) -> float:
        return self.stages["denoise_loop"].seconds

    @property
    def seconds_per_image(self) -> float:
        return (
            self.stages["text_encoder"].seconds
            + self.steps * self.stages["denoise_loop"].seconds
            + self.stages["vae_decode"].seconds
            + self.link_s
        )

    @property
    def bound(self) -> str:
        """What limits the image: the host's launches or the GPU's kernels (the loop decides: it dominates)."""
        return self.stages["denoise_loop"].bound


def project(
    static: ShapeStatic,
    gpu: GPU,
    model: TimeModel,
    backend: str = "eager",
    policy: str = "all_resident",
    efficiency: ArchEfficiency | None = None,
) -> Projection:
    efficiency = efficiency or model.efficiency(gpu)[0]
    host = model.host_s_per_launch if backend == "eager" else 0.0
    stages = {
        name: stage_time(static.stages[name].trace, gpu, efficiency, host, fp32=static.stages[name].dtype == "float32")
        for name in STAGES
    }
    link = gpu.pcie_bytes_per_s
    moved = link_bytes_per_image(static, policy)
    if moved and link is None:
        raise ValueError(f"{gpu.name}: the catalog entry has no 'pcie'; an offload policy's time needs it")
    return Projection(stages, static.steps, moved, moved / link if moved else 0.0)
