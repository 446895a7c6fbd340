"""Residency policies in runs (``sdshape run --policy``), with diffusers' and accelerate's own mechanisms.

Why their code and not ours: what an offload policy costs is how those libraries move the weights (one copy
per tensor, pageable or pinned memory, hooks that fire per module call), which is what ``sdshape fit``
prices and what a run must check. The hooks go on each library model a stage module wraps (the text
encoders, the UNet or transformer, the VAE), as the pipeline methods put them on each component:

- ``model_offload``: ``accelerate.cpu_offload_with_hook`` chained in pipeline order (text encoders, then the
  denoiser, then the VAE), as ``DiffusionPipeline.enable_model_cpu_offload`` chains them; the pipeline stage
  offloads every component at the end of its call, as ``maybe_free_model_hooks`` does.
- ``group_offload_*``: ``diffusers.hooks.apply_group_offloading`` (what ``enable_group_offload`` calls), block
  level with one block a group or leaf level, with ``use_stream`` on or off.
- ``sequential_offload``: ``accelerate.cpu_offload`` on each component (``enable_sequential_cpu_offload``).
- ``text_encoders_dropped``: each text encoder as one group of ``apply_group_offloading`` (its weights loaded
  for its call and dropped after, the host copy kept); the denoiser and the VAE resident.

VAE tiling and slicing are the VAE's own ``enable_tiling``/``enable_slicing``. On the CPU the offload device
is the compute device, so the hooks run and move nothing: a wiring check. A stream needs CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sdshape.config.options import RunOptions
from sdshape.core.vocabulary import DEFAULT_POLICY
from sdshape.models.quantize import library_models

ORDER = ("text_encoder", "denoiser", "vae")  # pipeline order: model offload's hooks chain this way
# (Which policies a device or backend allows is checked with the other options: sdshape.config.limits.check_policy.)


@dataclass
class Residency:
    """What a run applied: the policy, the VAE's tiling and slicing, and the hooks it installed."""

    policy: str = DEFAULT_POLICY
    vae_tiling: bool = False
    vae_slicing: bool = False
    installed: list[str] = field(default_factory=list)
    _offload_hooks: list[Any] = field(default_factory=list, repr=False)

    def end_of_call(self) -> None:
        """What the pipeline does after a call (``maybe_free_model_hooks``): every model-offloaded component
        back to the host, so the next call moves them in again."""
        for hook in self._offload_hooks:
            hook.offload()

    def resident_bytes(self, weights: dict[str, int]) -> int:
        """The weights the GPU holds however the stages run (the floor a peak is checked against): all of
        them when resident, the denoiser and the VAE when the encoders are dropped, none under offload."""
        if self.policy == "all_resident":
            return sum(weights.values())
        if self.policy == "text_encoders_dropped":
            return weights.get("denoiser", 0) + weights.get("vae", 0)
        return 0

    def floor(self, modules: dict[str, nn.Module], device: torch.device, resident: int | None) -> int | None:
        """The least a GPU peak can hold under this policy (None: no floor), given what all resident holds."""
        if device.type != "cuda" or self.policy == DEFAULT_POLICY:
            return resident
        from sdshape.models.build import weight_bytes

        return self.resident_bytes({kind: weight_bytes(module) for kind, module in modules.items()}) or None

    def describe(self) -> str:
        vae = [name for name, on in (("tiling", self.vae_tiling), ("slicing", self.vae_slicing)) if on]
        return self.policy + (f" + VAE {' and '.join(vae)}" if vae else "")


def _models(modules: dict[str, nn.Module], kind: str) -> list[nn.Module]:
    module = modules.get(kind)
    return [] if module is None else library_models(module)


def apply(modules: dict[str, nn.Module], device: torch.device, options: RunOptions) -> Residency:
    """Install the run's policy and the VAE's tiling and slicing on the built components (stage modules keyed
    by kind, weights on ``device``)."""
    return install(modules, options.policy, device, options.vae_tiling, options.vae_slicing)


def install(
    modules: dict[str, nn.Module],
    policy: str,
    device: torch.device,
    vae_tiling: bool = False,
    vae_slicing: bool = False,
) -> Residency:
    """Install ``policy`` on the built components."""
    residency = Residency(policy, vae_tiling, vae_slicing)
    for vae in _models(modules, "vae"):
        if vae_tiling:
            vae.enable_tiling()
        if vae_slicing:
            vae.enable_slicing()
    if policy == "all_resident":
        return residency
    host = torch.device("cpu")
    if policy == "model_offload":
        from accelerate import cpu_offload_with_hook

        hook = None
        for kind in ORDER:
            for model in _models(modules, kind):
                model.to(host)
                _, hook = cpu_offload_with_hook(model, device, prev_module_hook=hook)
                residency._offload_hooks.append(hook)
                residency.installed.append(f"cpu_offload_with_hook({type(model).__name__})")
        return residency
    if policy == "sequential_offload":
        from accelerate import cpu_offload

        for kind in ORDER:
            for model in _models(modules, kind):
                cpu_offload(model, execution_device=device)
                residency.installed.append(f"cpu_offload({type(model).__name__})")
        return residency
    from diffusers.hooks import apply_group_offloading

    if policy == "text_encoders_dropped":
        for model in _models(modules, "text_encoder"):
            model.to(host)
            apply_group_offloading(model, device, host, "block_level", num_blocks_per_group=1)
            residency.installed.append(f"apply_group_offloading({type(model).__name__}, whole)")
        return residency
    level = "block_level" if "block" in policy else "leaf_level"
    stream = policy.endswith("_stream")
    for kind in ORDER:
        # The VAE is grouped through its stage module: the decode calls AutoencoderKL.decode, not its forward,
        # and the stage module's forward is what onloads the group (AutoencoderKL has no block list: one group).
        targets = [modules[kind]] if kind == "vae" and kind in modules else _models(modules, kind)
        for model in targets:
            model.to(host)
            apply_group_offloading(
                model, device, host, level, num_blocks_per_group=1 if level == "block_level" else None,
                use_stream=stream,
            )  # fmt: skip
            residency.installed.append(f"apply_group_offloading({type(model).__name__}, {level}, stream={stream})")
    return residency
