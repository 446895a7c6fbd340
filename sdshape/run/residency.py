"""Residency policies in runs (``sdshape run --policy``), with diffusers' and accelerate's own mechanisms.

Why their code and not ours: what an offload policy costs is how those libraries move the weights (one copy
per tensor, pageable or pinned memory, hooks that fire per module call), which is what ``sdshape fit``
prices and what a run must check. The hooks go on each library model a stage module wraps (the text
encoders, the UNet or transformer, the VAE), as the pipeline methods put them on each component:

- ``model_offload``: ``accelerate.cpu_offload_with_hook`` chained in pipeline order (text encoders, then the
  denoiser, then the VAE), as ``DiffusionPipeline.enable_model_cpu_offload`` chains them. Each stage sends its
  components back at the end of its call (:meth:`Residency.after_call`), so a stage's rounds include the trip
  in and out that a pipeline call makes; in the pipeline stage that is where the next hook, or
  ``maybe_free_model_hooks`` at the end of the call, would send them.
- ``group_offload_*``: ``diffusers.hooks.apply_group_offloading`` (what ``enable_group_offload`` calls on each
  component), block level with one block a group or leaf level, with ``use_stream`` on or off.
- ``sequential_offload``: ``accelerate.cpu_offload`` on each component (``enable_sequential_cpu_offload``).
- ``text_encoders_dropped``: each text encoder as one group of ``apply_group_offloading`` (on the device for
  its call, moved off after it, before the denoiser runs; the host copy kept); the denoiser and VAE resident.

VAE tiling and slicing are the VAE's own ``enable_tiling``/``enable_slicing``. On the CPU the offload device
is the compute device, so the hooks run and move nothing: a wiring check. A stream needs CUDA, which
:func:`sdshape.config.limits.check_policy` says in one line before anything is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sdshape.config.options import RunOptions
from sdshape.core.vocabulary import DEFAULT_POLICY, KIND_OF_STAGE
from sdshape.models.quantize import library_models

ORDER = ("text_encoder", "denoiser", "vae")  # pipeline order: model offload's hooks chain this way
HOST = torch.device("cpu")


@dataclass
class Residency:
    """What a run applied: the policy, the VAE's tiling and slicing, and the hooks it installed."""

    policy: str = DEFAULT_POLICY
    vae_tiling: bool = False
    vae_slicing: bool = False
    installed: list[str] = field(default_factory=list)
    # kind -> what sends that kind's components back to the host (model offload's UserCpuOffloadHook.offload)
    _offloads: dict[str, list[Callable[[], None]]] = field(default_factory=dict, repr=False)

    def after_call(self, kind: str) -> Callable[[], None] | None:
        """What the stage of ``kind`` does at the end of each call (None: nothing). Under model offload: send
        its components back, inside the timed call, so every round pays the trip a pipeline call pays."""
        offloads = self._offloads.get(kind)
        if not offloads:
            return None

        def offload() -> None:
            for hook_offload in offloads:
                hook_offload()

        return offload

    def attach(self, stages: dict[str, Any]) -> None:
        """Give each wired stage what it does at the end of a call, and send every model-offloaded component to
        the host (wiring may have run the encoders): each stage's first round starts where the others do."""
        for stage, kind in KIND_OF_STAGE.items():
            stages[stage].after_call = self.after_call(kind)
        self.offload_all()

    def offload_all(self) -> None:
        """Every model-offloaded component to the host, as after a pipeline call: where each stage starts."""
        for offloads in self._offloads.values():
            for hook_offload in offloads:
                hook_offload()

    def resident_bytes(self, weights: dict[str, int]) -> int:
        """The weights the GPU holds however the stages run (the floor a peak is checked against): all of
        them when resident, the denoiser and the VAE when the encoders are dropped, none under offload."""
        if self.policy == "all_resident":
            return sum(weights.values())
        if self.policy == "text_encoders_dropped":
            return weights.get("denoiser", 0) + weights.get("vae", 0)
        return 0

    def floor(self, modules: dict[str, nn.Module], device: torch.device, resident: int | None) -> int | None:
        """The least a GPU peak can hold under this policy, given what all resident holds: 0 where the policy
        keeps no weight on the GPU between calls (a group-offloaded stage holds one group at a time, far below
        its weights, so any higher floor would flag true peaks)."""
        if device.type != "cuda" or self.policy == DEFAULT_POLICY:
            return resident
        from sdshape.models.build import weight_bytes

        return self.resident_bytes({kind: weight_bytes(module) for kind, module in modules.items()})


def _models(modules: dict[str, nn.Module], kind: str) -> list[nn.Module]:
    module = modules.get(kind)
    return [] if module is None else library_models(module)


def _group_targets(modules: dict[str, nn.Module], kind: str) -> list[nn.Module]:
    """What group offloading goes on for ``kind``: each library model, as ``enable_group_offload`` does.

    The decode calls ``vae.decode``, not the VAE's forward, so a group hook on the VAE's own forward never
    fires. AutoencoderKL names the blocks its decode runs (``_group_offload_block_modules``: the decoder,
    post_quant_conv), so its hooks fire on decode; a VAE that names none (AutoencoderTiny) is grouped through
    its stage module instead, whose forward is what decodes."""
    models = _models(modules, kind)
    if kind == "vae" and kind in modules and not all(hasattr(m, "_group_offload_block_modules") for m in models):
        return [modules[kind]]
    return models


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
    """Install ``policy`` on the built components; every offloaded component ends on the host."""
    residency = Residency(policy, vae_tiling, vae_slicing)
    for vae in _models(modules, "vae"):
        if vae_tiling:
            vae.enable_tiling()
        if vae_slicing:
            vae.enable_slicing()
    if policy == "all_resident":
        return residency
    if policy == "model_offload":
        from accelerate import cpu_offload_with_hook

        hook = None
        for kind in ORDER:
            for model in _models(modules, kind):
                model.to(HOST)  # as enable_model_cpu_offload starts: every component on the host
                _, hook = cpu_offload_with_hook(model, device, prev_module_hook=hook)
                residency._offloads.setdefault(kind, []).append(hook.offload)
                residency.installed.append(f"cpu_offload_with_hook({type(model).__name__})")
        return residency
    if policy == "sequential_offload":
        from accelerate import cpu_offload

        for kind in ORDER:
            for model in _models(modules, kind):
                model.to(HOST)  # as enable_sequential_cpu_offload does, buffers offloaded too where it does
                cpu_offload(model, execution_device=device, offload_buffers=len(model._parameters) > 0)
                residency.installed.append(f"cpu_offload({type(model).__name__})")
        return residency
    from diffusers.hooks import apply_group_offloading

    if policy == "text_encoders_dropped":
        # CLIP's and T5's models have no ModuleList child: block level makes each one group, onloaded when the
        # encoder's forward starts and moved off when it returns.
        for model in _models(modules, "text_encoder"):
            model.to(HOST)
            apply_group_offloading(model, device, HOST, "block_level", num_blocks_per_group=1)
            residency.installed.append(f"apply_group_offloading({type(model).__name__}, whole)")
        return residency
    level = "block_level" if "block" in policy else "leaf_level"
    stream = policy.endswith("_stream")
    for kind in ORDER:
        for model in _group_targets(modules, kind):
            model.to(HOST)
            apply_group_offloading(
                model, device, HOST, level, num_blocks_per_group=1 if level == "block_level" else None,
                use_stream=stream,
            )  # fmt: skip
            residency.installed.append(f"apply_group_offloading({type(model).__name__}, {level}, stream={stream})")
    return residency
