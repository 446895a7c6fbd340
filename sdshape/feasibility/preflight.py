"""Before a run allocates anything: does it fit the device's memory? The static model answers.

A size that could only run out of memory (``--resolution 16384``, FLUX.1-dev's weights on a 16 GB
machine) is refused up front with the static model's figures: the weights in the run's format
(:func:`sdshape.feasibility.formats.stored_weights`, one line per component when they alone are too
many), then the allocated peak under the run's residency policy (:func:`sdshape.feasibility.policies.
peak_bytes`, the figure ``sdshape fit`` judges cards by). ``--force-size`` runs it anyway.

The harnesses call :func:`check_fits` on the resolved plan (``sdshape run``, ``pytest bench/``,
``sdshape shapes --measure``); the plan is resolved below this layer and does not reach up for it.
"""

from __future__ import annotations

from typing import Any

from sdshape.core import units
from sdshape.core.errors import UsageError
from sdshape.core.vocabulary import DEFAULT_POLICY, KIND_OF_STAGE
from sdshape.feasibility.fit import CONTEXT_BYTES
from sdshape.feasibility.formats import weight_format
from sdshape.feasibility.policies import peak_bytes
from sdshape.feasibility.static import ShapeStatic
from sdshape.feasibility.trace_cache import cached_static


def device_memory(device: str) -> tuple[int, str]:
    """All the memory a run could have: the GPU's total, or the host's available RAM."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory, "the GPU has"
    import psutil

    return psutil.virtual_memory().available, "this machine has available"


def _static(plan: Any, tiled: bool) -> ShapeStatic | None:
    """The run traced on the meta device; a size whose tensors torch cannot even describe (more than 2^63
    bytes: ``--seq-len 1000000000``) is refused here, in the same words. A model the trace cannot run
    (a ``--weights`` folder whose parts do not fit together) is not judged here: None, with a note on the
    plan, and the run's own build records the failure in its rows."""
    o = plan.options
    shape = plan.shape_spec
    if shape is None:  # a --weights folder: its configs make the composition the model traces
        from sdshape.models.weights_folder import folder_shape

        shape = folder_shape(plan.weights)
    try:
        return cached_static(shape, o.resolution, o.steps, o.batch, weight_format(o.precision), o.vae_fp16, tiled)
    except UsageError:
        raise
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        if isinstance(error, RuntimeError) and "overflow" in first:
            raise UsageError(
                f"{_sizes(o)}: one of its tensors is over 2^63 bytes, more than any device holds (torch: {first})"
            ) from None
        plan.notes.append(f"the static model could not trace this run ({first[:200]}): its size is not checked")
        return None


def _sizes(o: Any) -> str:
    return f"--resolution {o.resolution} --batch {o.batch} --seq-len {o.sequence_length}"


def check_fits(plan: Any) -> None:
    """Refuse, before anything is allocated, a run the static model puts over the device's memory (on a
    GPU with its CUDA context on top, as ``fit`` judges a card), unless ``--force-size``. On the CPU every
    weight stays in host memory whatever the policy, so the peak is all-resident's."""
    o = plan.options
    if o.force_size:
        return
    device = plan.device.type
    static = _static(plan, tiled=False)
    if static is None:
        return
    available, has = device_memory(device)
    context = CONTEXT_BYTES if device == "cuda" else 0
    policy = o.policy if device == "cuda" else DEFAULT_POLICY
    if policy == DEFAULT_POLICY and static.weight_bytes + context > available:  # offload need not hold them all
        parts = ", ".join(
            f"{KIND_OF_STAGE[name]} {units.size(stage.weight_bytes)}" for name, stage in static.stages.items()
        )
        raise UsageError(
            f"--shape {o.shape} in {o.precision}: its weights alone need {units.size(static.weight_bytes)} "
            f"({parts}), more than the {units.size(available)} {has}; try a smaller shape or precision, "
            "or pass --force-size"
        )
    tiled = _static(plan, tiled=True) if o.vae_tiling else None
    peak = peak_bytes(static, policy, tiled) + context
    if peak > available:
        decode = (tiled or static).stages["vae_decode"].activation_peak_bytes
        raise UsageError(
            f"{_sizes(o)}: the static model puts "
            f"the peak at {units.size(peak)} under {policy} (weights {units.size(static.weight_bytes)}, the VAE "
            f"decode's activations alone {units.size(decode)}), more than the {units.size(available)} {has}; "
            "pass --force-size to run it anyway"
        )
