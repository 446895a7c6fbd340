"""Residency policies as diffusers implements them: the peak each holds, and the bytes it moves over PCIe.

Peaks are ``torch.cuda.max_memory_allocated`` figures (weights plus the traced activations); the CUDA
context comes on top when a card's fit is judged. Listed from the least intrusive to the most.

- ``all_resident``: every component on the GPU for the whole call.
- ``text_encoders_dropped``: the text encoders run alone first and are freed; the denoiser and VAE load
  after (diffusers' precomputed-embeddings recipe: ``encode_prompt``, ``del`` the encoders, then call the
  pipeline with ``prompt_embeds``).
- ``model_offload``: ``enable_model_cpu_offload``: one component on the GPU at a time, each moved in
  whole before its stage and back after.
- ``vae_tiled``: model offload, and the VAE decodes in tiles one image at a time
  (``enable_vae_tiling`` and ``enable_vae_slicing``; tiles of the VAE's ``sample_size``).
- ``sequential_offload``: ``enable_sequential_cpu_offload``: one layer's weights at a time, moved in
  before every call of that layer (the denoiser's weights cross the link once per step).
"""

from __future__ import annotations

from sdshape.feasibility.static import ShapeStatic

POLICIES = ("all_resident", "text_encoders_dropped", "model_offload", "vae_tiled", "sequential_offload")
STAGES = ("text_encoder", "denoise_loop", "vae_decode")


def _need(static: ShapeStatic, name: str) -> int:
    """A stage with its whole component resident."""
    return static.stages[name].weight_bytes + static.stages[name].activation_peak_bytes


def _layer_need(static: ShapeStatic, name: str) -> int:
    """A stage with one layer's weights resident at a time (sequential offload)."""
    return static.stages[name].largest_layer_bytes + static.stages[name].activation_peak_bytes


def peak_bytes(static: ShapeStatic, policy: str, tiled: ShapeStatic | None = None) -> int:
    """The allocated peak under ``policy``. ``tiled`` is the same shape traced with a tiled VAE decode."""
    w = {s: static.stages[s].weight_bytes for s in STAGES}
    a = {s: static.stages[s].activation_peak_bytes for s in STAGES}
    if policy == "all_resident":
        return sum(w.values()) + max(a.values())
    if policy == "text_encoders_dropped":
        return max(
            _need(static, "text_encoder"), w["denoise_loop"] + w["vae_decode"] + max(a["denoise_loop"], a["vae_decode"])
        )
    if policy == "model_offload":
        return max(_need(static, s) for s in STAGES)
    if policy == "vae_tiled":
        decode = _need(tiled or static, "vae_decode")
        return max(_need(static, "text_encoder"), _need(static, "denoise_loop"), decode)
    if policy == "sequential_offload":
        return max(
            _layer_need(static, "text_encoder"),
            _layer_need(static, "denoise_loop"),
            _layer_need(tiled or static, "vae_decode"),
        )
    raise ValueError(policy)


def link_bytes_per_image(static: ShapeStatic, policy: str) -> int:
    """Weight bytes a policy moves between host and GPU for one pipeline call (both directions)."""
    w = {s: static.stages[s].weight_bytes for s in STAGES}
    if policy == "all_resident":
        return 0
    if policy == "text_encoders_dropped":
        return w["text_encoder"]  # loaded for the call and freed, not moved back
    if policy in ("model_offload", "vae_tiled"):
        return 2 * sum(w.values())  # each component in before its stage and out after
    if policy == "sequential_offload":
        return w["text_encoder"] + static.steps * w["denoise_loop"] + w["vae_decode"]
    raise ValueError(policy)
