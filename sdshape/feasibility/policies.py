"""Residency policies as diffusers implements them: the peak each holds, what it moves between host and GPU
per image (bytes each way, separate copies, pinned or pageable, overlapped or not), and the host RAM it needs.

Peaks are ``torch.cuda.max_memory_allocated`` figures (weights plus the traced activations); the CUDA
context comes on top when a card's fit is judged. The policies (``sdshape.core.vocabulary.POLICIES``):

- ``all_resident``: every component on the GPU for the whole call; nothing moves.
- ``text_encoders_dropped``: the text encoders are loaded, run and dropped before the denoiser and VAE
  run (diffusers' precomputed-embeddings recipe); ``sdshape run`` makes each encoder one group of
  ``apply_group_offloading`` without a stream, so per image they cross the link in and back.
- ``model_offload``: ``enable_model_cpu_offload``: ``accelerate.cpu_offload_with_hook`` moves a whole
  component to the GPU before its stage (``module.to(device)``: one copy per tensor, from pageable memory)
  and back to the host when the next component's hook fires; both directions, every image.
- ``group_offload_block``/``_leaf`` (``enable_group_offload``, block level with one block a group, or
  leaf level): each group's weights are copied in before the group runs; the denoiser's weights cross
  once per step. Without streams a group goes back with ``module.to(cpu)`` after it runs (a copy back into
  fresh pageable memory, both stalling the compute); with ``use_stream=True`` the host copy is pinned and
  kept (nothing moves back), and the next group is prefetched on a side stream while the current one
  computes.
- ``sequential_offload``: ``enable_sequential_cpu_offload``: ``accelerate.cpu_offload`` keeps every
  weight in a host state dict and copies each leaf layer's tensors in before its call (pageable, one copy
  per tensor), dropping them after; the denoiser's weights cross once per step.

VAE tiling and slicing (``enable_vae_tiling``/``enable_vae_slicing``) combine with any policy: the
decode runs one tile of one image at a time, which bounds its activations.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdshape.core.vocabulary import POLICIES
from sdshape.feasibility.static import ShapeStatic, StageStatic

STAGES = ("text_encoder", "denoise_loop", "vae_decode")
STREAMED = ("group_offload_block_stream", "group_offload_leaf_stream")
GROUP = ("group_offload_block", "group_offload_block_stream", "group_offload_leaf", "group_offload_leaf_stream")
PER_CALL = (*GROUP, "sequential_offload")  # every call of a component moves its weights in again

__all__ = ["POLICIES", "STAGES", "Transfers", "host_bytes", "peak_bytes", "transfers"]


def _need(stage: StageStatic) -> int:
    """A stage with its whole component resident."""
    return stage.weight_bytes + stage.activation_peak_bytes


def _held(stage: StageStatic, policy: str) -> int:
    """The weights a per-call policy holds on the GPU at once for ``stage``: one block (two with a stream's
    prefetch), one leaf layer (two with prefetch), or one layer under sequential offload."""
    if policy in ("group_offload_block", "group_offload_block_stream"):
        held = stage.largest_group_bytes
    else:
        held = stage.largest_layer_bytes
    held = int(held * stage.stored_fraction)
    return 2 * held if policy in STREAMED else held


def peak_bytes(static: ShapeStatic, policy: str, tiled: ShapeStatic | None = None) -> int:
    """The allocated peak under ``policy``; ``tiled``: the same shape traced with a tiled, sliced VAE decode
    (VAE tiling and slicing on), else the decode as traced."""
    stages = {**static.stages, "vae_decode": (tiled or static).stages["vae_decode"]}
    w = {s: stages[s].weight_bytes for s in STAGES}
    a = {s: stages[s].activation_peak_bytes for s in STAGES}
    if policy == "all_resident":
        return sum(w.values()) + max(a.values())
    if policy == "text_encoders_dropped":
        return max(
            _need(stages["text_encoder"]),
            w["denoise_loop"] + w["vae_decode"] + max(a["denoise_loop"], a["vae_decode"]),
        )
    if policy == "model_offload":
        return max(_need(stages[s]) for s in STAGES)
    if policy in PER_CALL:
        return max(_held(stages[s], policy) + a[s] for s in STAGES)
    raise ValueError(policy)


@dataclass(frozen=True)
class Transfers:
    """What a policy moves between host and GPU for one pipeline call (one prompt batch)."""

    h2d_bytes: int
    d2h_bytes: int
    copies: int  # separate copy calls: one per tensor moved
    pinned: bool  # from page-locked host memory (DMA at the link's rate) or pageable (staged by the driver)
    overlapped: bool  # issued on a side stream while the GPU computes
    loop_h2d_bytes: int = 0  # of h2d_bytes, what the denoising loop moves (the part a stream can hide)

    @property
    def total_bytes(self) -> int:
        return self.h2d_bytes + self.d2h_bytes


def _tensors(stage: StageStatic) -> int:
    return max(stage.tensor_count, 1)


def transfers(static: ShapeStatic, policy: str) -> Transfers:
    """Bytes each way, copies, pinned or not, overlapped or not, for one pipeline call under ``policy``."""
    stages = static.stages
    w = {s: stages[s].weight_bytes for s in STAGES}
    n = {s: _tensors(stages[s]) for s in STAGES}
    steps = static.steps
    if policy == "all_resident":
        return Transfers(0, 0, 0, False, False)
    if policy == "text_encoders_dropped":  # one group each, without a stream: in for the call, back after it
        return Transfers(w["text_encoder"], w["text_encoder"], 2 * n["text_encoder"], False, False)
    if policy == "model_offload":
        return Transfers(sum(w.values()), sum(w.values()), 2 * sum(n.values()), False, False)
    if policy in PER_CALL:
        loop = steps * w["denoise_loop"]
        h2d = w["text_encoder"] + loop + w["vae_decode"]
        copies = n["text_encoder"] + steps * n["denoise_loop"] + n["vae_decode"]
        if policy in GROUP and policy not in STREAMED:  # ModuleGroup.offload_: module.to(cpu), a copy back
            return Transfers(h2d, h2d, 2 * copies, False, False, loop)
        return Transfers(h2d, 0, copies, policy in STREAMED, policy in STREAMED, loop)
    raise ValueError(policy)


def host_bytes(static: ShapeStatic, policy: str) -> int:
    """Host RAM the policy keeps weights in, beyond the process itself: every offloaded component's weights
    (model and sequential offload, group offload; the pinned copy of a streamed group offload is that same
    host copy, page-locked). ``all_resident`` keeps none once loaded; ``text_encoders_dropped`` reloads the
    encoders for each prompt, so their weights stay on the host."""
    w = {s: static.stages[s].weight_bytes for s in STAGES}
    if policy == "all_resident":
        return 0
    if policy == "text_encoders_dropped":
        return w["text_encoder"]
    return sum(w.values())
