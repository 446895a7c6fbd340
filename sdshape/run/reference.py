"""The parity reference: eager fp32 outputs of every stage on the shared inputs, kept on the host.

Every backend's stage output is compared with these (``sdshape.measurement.parity``), and
every backend's denoiser is conditioned on the reference's fp32 text embeddings, so
parity compares backends, not the text encoder's rounding. Nothing here holds
device memory while the sessions it checks are measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sdshape.core.vocabulary import STAGES
from sdshape.measurement import parity
from sdshape.measurement.measure import classify_failure
from sdshape.models.families.base import Conditioning


@dataclass
class Reference:
    """Eager fp32 outputs of every stage on the shared inputs, plus the fp32 conditioning.

    Everything is kept on the host: the reference must not hold device memory while the
    sessions it checks are measured.
    """

    outputs: dict[str, torch.Tensor]
    conditioning: Conditioning

    def portable(self) -> dict[str, Any]:
        """Plain arrays, to cross a process boundary (torch shares tensors through memory that dies with
        the process that made them)."""
        return {
            "outputs": {stage: t.numpy() for stage, t in self.outputs.items()},
            "conditioning": {name: t.numpy() for name, t in self.conditioning.tensors.items()},
        }

    @classmethod
    def from_portable(cls, data: dict[str, Any] | None) -> Reference | None:
        if data is None:
            return None
        conditioning = Conditioning({k: torch.from_numpy(v) for k, v in data["conditioning"].items()})
        return cls({stage: torch.from_numpy(a) for stage, a in data["outputs"].items()}, conditioning)

    def conditioning_for(self, dtype: torch.dtype, device: torch.device) -> Conditioning:
        return self.conditioning.to(device, dtype)


def on_host(conditioning: Conditioning) -> Conditioning:
    return conditioning.on_host()


def untimed_reference(stages: dict[str, Any], progress: Any = None, task: Any = None) -> Reference | None:
    """One untimed run of each stage; outputs and conditioning copied to the host (None if a stage fails)."""
    outputs: dict[str, torch.Tensor] = {}
    try:
        with torch.inference_mode():
            for stage in STAGES:
                outputs[stage] = parity.flatten(stages[stage].run())
                if progress is not None and task is not None:
                    progress.update(task, advance=1)
    except Exception as error:
        if progress is not None and task is not None:
            progress.update(task, description=f"reference failed: {classify_failure(error)[1]}")
        return None
    return Reference(outputs, on_host(stages["denoise_loop"].conditioning))
