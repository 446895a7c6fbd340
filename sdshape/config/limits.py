"""What a run's numbers can mean, checked before anything is allocated.

One rule per number, shared by the flags and the shapes files, so ``--seq-len
-3`` and ``sequence_length = -3`` fail the same way. Whether a size fits the
device's memory is the static model's answer, asked by the harness before
anything is allocated (:mod:`sdshape.feasibility.preflight`).
"""

from __future__ import annotations

from typing import Any

from sdshape.core.bounds import Bounds, whole_number
from sdshape.core.errors import UsageError, choices_error

MAX_ROUNDS = 10_000
MAX_WARMUP = 1_000
# torch.Generator takes a signed 64-bit seed; the inputs use seed + 1 and seed + 2.
MAX_SEED = 2**63 - 9
DEFAULT_TRAIN_TIMESTEPS = 1000  # every zoo scheduler's
# At 16384 px SD's VAE decoder alone holds two 128-channel full-resolution fp16 tensors: 128 GiB, more than any card.
MAX_RESOLUTION = 16_384
MAX_BATCH = 4_096
MAX_BUDGET = 1e12  # parameters: 60 times the largest zoo system (FLUX.1-dev, 16.9 G)
MAX_DECLARED_GPUS = 1_024
MAX_TOP = 1_000  # compositions `shapes --measure` times: each is a GPU session per new component

# Every number a flag takes, declared once: the flags take these as argparse's type=, and the plan and the
# shapes files check values that came another way with the same objects (sdshape.core.bounds).
RESOLUTION = Bounds(int, 8, MAX_RESOLUTION, multiple=8, why="latents are 1/8 of the image")
STEPS = Bounds(int, 1, DEFAULT_TRAIN_TIMESTEPS)  # and at most the scheduler's training timesteps
BATCH = Bounds(int, 1, MAX_BATCH)
SEQUENCE_LENGTH = Bounds(int, 1)  # the most is the text encoder's, or what memory allows (feasibility.preflight)
ROUNDS = Bounds(int, 1, MAX_ROUNDS)
MOST_ROUNDS = Bounds(int, 5, MAX_ROUNDS)
WARMUP = Bounds(int, 0, MAX_WARMUP)
SEED = Bounds(int, 0, MAX_SEED)
TARGET_CI = Bounds(float, 0, 1, above=True, below=True, noun="a fraction")
MAX_TIME = Bounds(float, 0, 3600, above=True, unit="seconds")
SAMPLE_INTERVAL = Bounds(float, 0, 3600, unit="seconds (0: no sampler thread)")
BUDGET = Bounds(float, 0, MAX_BUDGET, above=True, noun="a number of parameters")
BUDGET_BYTES = Bounds(int, 0, 4 * MAX_BUDGET, above=True, noun="a number of bytes")  # fp32 weights
DECLARED_GPUS = Bounds(int, 1, MAX_DECLARED_GPUS)
TOP = Bounds(int, 1, MAX_TOP)


def train_timesteps(scheduler: dict[str, Any] | None) -> int:
    return int((scheduler or {}).get("num_train_timesteps") or DEFAULT_TRAIN_TIMESTEPS)


def run_vae_precision(precision: str, upcasts: bool, vae_fp16: bool, notes: list[str] | None = None) -> str:
    """fp32 where the pipeline upcasts the VAE (``upcasts``: SDXL's, whose VAE config says ``force_upcast``)
    and the run is fp16, unless --vae-fp16; no pipeline upcasts a bf16 or fp32 VAE."""
    if precision != "fp16" or vae_fp16 or not upcasts:
        return precision
    if notes is not None:
        notes.append("VAE decodes in fp32: its config says force_upcast, as the SDXL pipeline does (--vae-fp16: fp16)")
    return "fp32"


def check_storage(precision: str, backend_specs: dict[str, tuple[str, dict[str, Any]]], library: bool = True) -> None:
    """A quantized weight format runs with eager PyTorch only: ONNX export and TensorRT take plain dtypes,
    and torch.compile of these layers is not what the libraries' recipes run; with ``library``, its library
    must be installed here."""
    from sdshape.core.vocabulary import PRECISIONS
    from sdshape.models.quantize import check_available

    if precision not in PRECISIONS or not PRECISIONS[precision].storage:
        return
    others = [label for label, (name, _) in backend_specs.items() if name != "eager"]
    if others:
        raise UsageError(f"--precision {precision} runs with --backend eager only; not with {', '.join(others)}")
    if library:
        check_available(precision)


def check_steps(steps: int | None, scheduler: dict[str, Any] | None) -> None:
    """Steps within what the shape's scheduler was trained with: the one check of ``--steps`` beyond its
    declared bounds (:data:`STEPS`, checked when it is parsed), shared by run, pytest, shapes, fit and inspect."""
    if steps is not None:
        whole_number("--steps", steps, STEPS.minimum, train_timesteps(scheduler))  # type: ignore[arg-type]


def check_shape_resolution(specs: dict[str, Any], resolution: int, flag: str = "--resolution") -> None:
    """A resolution the denoiser's position table cannot hold is one line naming the largest it can
    (diffusers would raise deep inside the first denoiser call)."""
    from sdshape.models.families.base import largest_resolution

    denoiser, vae = specs["denoiser"], specs["vae"]
    largest = largest_resolution(denoiser, vae)
    if largest is not None and resolution > largest:
        table = denoiser.config["pos_embed_max_size"]
        raise UsageError(
            f"{flag} {resolution}: {denoiser.name}'s position table holds {table}x{table} patches, "
            f"so the largest image it supports is {largest} px"
        )


def parse_backends(value: str, known: list[str]) -> list[str]:
    """A comma list of backends, each optionally with a variant (``compile:reduce-overhead``)."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise choices_error("backend", value, known)
    for name in names:
        if name.partition(":")[0] not in known:
            raise choices_error("backend", name.partition(":")[0], known)
    return list(dict.fromkeys(names))  # a backend named twice runs once


# Policies whose use_stream prefetches on a CUDA stream: diffusers refuses them on the CPU.
POLICIES_NEEDING_CUDA = ("group_offload_block_stream", "group_offload_leaf_stream")
# torch.compile modes that replay CUDA graphs on a GPU (captured on fixed weight addresses, which offload moves)
GRAPH_MODES = ("max-autotune", "reduce-overhead")


def check_policy(policy: str, device: str, specs: dict[str, tuple[str, dict]], precision: str = "fp32") -> None:
    """One line, exit 2, for a policy that is unknown, needs a GPU here, or a backend that runs no torch module
    (ONNX Runtime and TensorRT hold their own copy of the weights: diffusers' hooks cannot move it), replays
    CUDA graphs (captured on weight addresses that offload changes), or rewrites layers after the hooks; and
    for a weight format the policy's library cannot move (each refusal was seen failing on tiny)."""
    from sdshape.core.vocabulary import DEFAULT_POLICY, POLICIES, PRECISIONS

    if policy not in POLICIES:
        raise choices_error("policy", policy, POLICIES)
    if policy in POLICIES_NEEDING_CUDA and device != "cuda":
        allowed = ", ".join(p for p in POLICIES if p not in POLICIES_NEEDING_CUDA)
        raise UsageError(
            f"--policy {policy} needs a CUDA GPU: use_stream prefetches on a CUDA stream (here: {allowed})"
        )
    if policy == DEFAULT_POLICY:
        return
    storage = PRECISIONS[precision].storage if precision in PRECISIONS else None
    if policy == "sequential_offload" and storage and storage != "fp8":
        raise UsageError(
            f"--policy sequential_offload with --precision {precision}: accelerate's cpu_offload rebuilds each "
            "weight from a plain state dict, which quantized tensors do not survive (group_offload_leaf is nearest)"
        )
    if policy == "model_offload" and storage == "int8":
        raise UsageError(
            "--policy model_offload with --precision int8: module.to() cannot move torchao's int8 weights "
            "(torch refuses to swap them); diffusers' group offload handles torchao's tensors"
        )
    from sdshape.backends import get_backend

    for label, (name, options) in specs.items():
        if not get_backend(name, options).keeps_module:
            raise UsageError(
                f"--policy {policy} moves torch modules with diffusers' hooks; backend {label} runs its own copy "
                "of the weights (use eager or compile)"
            )
        graphs = options.get("cuda_graph") or (options.get("compile_mode") in GRAPH_MODES and device == "cuda")
        if graphs:
            raise UsageError(f"--policy {policy} moves weights between calls; {label} replays a captured graph")
        rewritten = [flag for flag in ("channels_last", "fuse_qkv") if options.get(flag)]
        if rewritten:  # a fused layer made after the hooks is in no offload group; a converted one is undone
            raise UsageError(
                f"--policy {policy}: {label} rewrites the layers ({', '.join(rewritten)}) after the offload hooks "
                "hold their weights (use compile without them)"
            )
