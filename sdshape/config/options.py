"""Every run option, declared once: :class:`RunOptions`.

Each field carries its flag, help, default, bounds or choices, and the commands it applies to
(``sdshape run``, ``pytest bench/``, ``sdshape shapes --measure``; ``sdshape fit`` and
``sdshape inspect``, which model a run, with their own help and default where these differ:
:class:`~sdshape.config.declaring.Elsewhere`). The argparse flags, pytest's options, the plan
and the options a result records are all derived from these fields (:func:`add_options`,
:meth:`RunOptions.from_values`, :func:`sdshape.config.plan.resolve`), so adding an option is one
field here, and a default is written only here (or, where it depends on the device, once in
:data:`~sdshape.config.declaring.GPU_DEFAULTS` / ``CPU_DEFAULTS``, which the help text quotes).

Flags a backend declares come from the backend (``--ort-provider``): their values reach that
backend only, and two backends declaring one flag are refused when they are registered
(:func:`sdshape.backends.declared_flags`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from sdshape.config import limits
from sdshape.config.common_flags import STORE_FORMS
from sdshape.config.declaring import (
    BENCH,
    CPU_DEFAULTS,
    DEFAULT_BACKEND,
    DEFAULT_SHAPE,
    FIT,
    HARNESSES,
    INSPECT,
    MODELLED,
    RUN,
    Elsewhere,
    declared_default,
    declared_help,
    option,
)
from sdshape.core.bounds import Bounds
from sdshape.core.errors import choices_error
from sdshape.core.vocabulary import DEFAULT_POLICY, DEVICES, POLICIES, PRECISION_NAMES


@dataclass(frozen=True)
class RunOptions:
    """The options of one run as given (None: not given, the plan picks the device's default)."""

    shape: str | None = option("--shape", f"zoo shape (default {DEFAULT_SHAPE}), or a name from --shapes-file")
    text_encoder: str | None = option("--text-encoder", "swap in any zoo text encoder (e.g. t5-v1.1-large)")
    denoiser: str | None = option(
        "--denoiser",
        "swap in any zoo denoiser, UNet or transformer (e.g. bk-sdm-small); its text conditioning is adapted",
        aliases=("--unet",),
    )
    vae: str | None = option("--vae", "swap in any zoo VAE (e.g. taesd)")
    sequence_length: int | None = option(
        "--seq-len",
        "text sequence length (default: the shape's; CLIP's maximum is 77)",
        kind=limits.SEQUENCE_LENGTH,
        where=HARNESSES,
    )
    shapes_file: str | None = option(
        "--shapes-file", "TOML of named compositions: [shape.NAME] text_encoder, unet, vae"
    )
    backend: str | None = option(
        "--backend",
        f"backend, or a comma list with variants (default {DEFAULT_BACKEND})",
        where=(*HARNESSES, FIT),
        elsewhere={FIT: Elsewhere("eager, or compile (CUDA graphs: no host time)", DEFAULT_BACKEND)},
    )
    precision: str | None = option(
        "--precision",
        "|".join(PRECISION_NAMES),
        where=MODELLED,
        choices=PRECISION_NAMES,
        elsewhere={
            FIT: Elsewhere(f"{', '.join(PRECISION_NAMES)} (default fp16)", "fp16"),
            INSPECT: Elsewhere("with --all --quality: weights and compute, as fit takes it (default bf16)"),
        },
    )
    vae_fp16: bool = option(
        "--vae-fp16",
        "decode in fp16 even where the pipeline upcasts the VAE to fp32 (SDXL's force_upcast; the fp16-fix VAE's way)",
        False,
        action="store_true",
        where=(RUN, BENCH, FIT),
        elsewhere={FIT: Elsewhere("decode in fp16 even when the VAE asks for fp32", False)},
    )
    device: str | None = option(
        "--device", f"{'|'.join(DEVICES)} (default: the GPU if there is one)", where=HARNESSES, choices=DEVICES
    )
    policy: str = option(
        "--policy",
        f"residency policy, with diffusers' own offload hooks: {'|'.join(POLICIES)}",
        DEFAULT_POLICY,
        where=(RUN, BENCH, FIT),
        elsewhere={FIT: Elsewhere("judge one residency policy only (default: the least intrusive that fits)")},
    )
    vae_tiling: bool = option(
        "--vae-tiling",
        "decode in tiles (the VAE's enable_tiling): bounds the decode's memory",
        False,
        action="store_true",
    )
    vae_slicing: bool = option(
        "--vae-slicing",
        "decode one image of the batch at a time (the VAE's enable_slicing)",
        False,
        action="store_true",
    )
    resolution: int | None = option(
        "--resolution",
        f"image side in pixels, a multiple of 8 (default: native; {CPU_DEFAULTS.resolution_cap} on the CPU)",
        kind=limits.RESOLUTION,
        where=MODELLED,
        elsewhere=dict.fromkeys((FIT, INSPECT), Elsewhere("image side in pixels (default: the shape's native)")),
    )
    steps: int | None = option(
        "--steps",
        "denoising steps",
        kind=limits.STEPS,
        where=MODELLED,
        elsewhere=dict.fromkeys((FIT, INSPECT), Elsewhere("denoising steps per image (default: the pipeline's own)")),
    )
    batch: int = option(
        "--batch",
        "images per prompt batch",
        1,
        kind=limits.BATCH,
        where=(RUN, BENCH, FIT),
        elsewhere={FIT: Elsewhere("images per prompt batch (default 1)", 1)},
    )
    rounds: str | None = option(
        "--rounds",
        f"timed rounds per stage (1 to {limits.MAX_ROUNDS}), or auto: until the median's 95%% CI is within --target-ci",
        where=HARNESSES,
    )
    target_ci: float = option(
        "--target-ci",
        "--rounds auto stops once the median's 95%% CI is within this fraction of it",
        0.01,
        kind=limits.TARGET_CI,
    )
    max_rounds: int = option("--max-rounds", "--rounds auto: at most this many rounds", 100, kind=limits.MOST_ROUNDS)
    max_time_s: float = option(
        "--max-time", "--rounds auto: at most this many seconds per stage", 60.0, kind=limits.MAX_TIME
    )
    profile: bool | None = option(
        "--profile",
        "one profiled round per stage: GPU busy fraction and time by kernel class (--no-profile: none)",
        action=argparse.BooleanOptionalAction,
    )
    warmup: int | None = option("--warmup", "untimed warm-up rounds per stage", kind=limits.WARMUP, where=HARNESSES)
    weights: str | None = option("--weights", "local diffusers pipeline folder to load instead of random weights")
    seed: int = option("--seed", "seed for weights and inputs", 0, kind=limits.SEED)
    cache_dir: str | None = option(
        "--cache-dir", "exported models and engines (default $SDSHAPE_CACHE_DIR, ~/.cache/sdshape)"
    )
    parity: bool = option("--no-parity", "skip the comparison with eager fp32 outputs", True, action="store_false")
    reference_workload: bool = option(
        "--no-reference",
        "skip the reference workload (a fixed GEMM and memory copies measured once per run, so history can tell "
        "a machine or driver change from a software one; under a second on the CPU)",
        True,
        action="store_false",
    )
    vram_cap: str | None = option(
        "--vram-cap", "GPU only: emulate a smaller card, e.g. 8GiB; records per stage fit or OOM"
    )
    sample_interval_s: float = option(
        "--sample-interval",
        "seconds between the sampler's readings (0: no sampler thread, open/close readings only)",
        0.02,
        kind=limits.SAMPLE_INTERVAL,
    )
    force_size: bool = option(
        "--force-size",
        "run sizes whose estimated memory exceeds the device's (by default they are refused up front)",
        False,
        action="store_true",
    )
    isolate: bool = option(
        "--isolate",
        "run each backend (and the parity reference) in a fresh process, so every baseline starts clean",
        False,
        action="store_true",
        where=(RUN,),
    )
    json_path: str | None = option("--json", "write results here (pytest-benchmark JSON schema)", where=(RUN,))
    save: bool = option(
        "--save",
        "also store the results under --results-dir, never overwriting",
        False,
        action="store_true",
        where=(RUN,),
    )
    results_dir: str = option("--results-dir", "where --save stores", "results", where=(RUN,))
    store: str | None = option(
        "--store",
        f"also ingest the written results into the results store: {STORE_FORMS}; implies --save without --json",
        where=(RUN,),
        const="",
    )

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> RunOptions:
        """The options in a parsed namespace (argparse's or pytest's); absent ones keep their defaults."""
        known = {f.name: values[f.name] for f in fields(cls) if f.name in values}
        return cls(**known)

    def check(self) -> None:
        """Every given value against the bounds and choices declared with its flag, once (numbers that came
        through a parser were checked by it with the same bounds; options built in code and pytest's are
        checked here)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(f.metadata["kind"], Bounds):
                f.metadata["kind"].check(f.metadata["flag"], value)
            if f.metadata["choices"] and value not in f.metadata["choices"]:
                raise choices_error(f.metadata["flag"].lstrip("-"), value, f.metadata["choices"])

    def given(self) -> dict[str, Any]:
        """The options that differ from their defaults, as a result document records them."""
        return {
            f.name: value for f, value in zip(fields(self), asdict(self).values(), strict=True) if value != f.default
        }


DEFAULTS = RunOptions()


def add_options(add_argument: Callable[..., Any], harness: str) -> None:
    """Add every run option that applies to ``harness`` (run, bench, shapes, fit, inspect), then, for a
    harness that measures, the backends' flags."""
    for f in fields(RunOptions):
        spec = f.metadata
        if harness not in spec["where"]:
            continue
        kwargs: dict[str, Any] = {
            "dest": f.name, "help": declared_help(f, harness), "default": declared_default(f, harness)
        }  # fmt: skip
        if spec["kind"] is not None:
            kwargs["type"] = spec["kind"]
        if spec["action"] is not None:
            kwargs["action"] = spec["action"]
        if spec["const"] is not None:
            kwargs.update(nargs="?", const=spec["const"])
        if spec["action"] is None:
            kwargs["metavar"] = spec["metavar"] or spec["flag"].lstrip("-").upper().replace("-", "_")
        add_argument(spec["flag"], *spec["aliases"], **kwargs)
    if harness in HARNESSES:  # the modelling commands start without loading the backends (nor torch)
        add_backend_flags(add_argument)


BACKEND_FLAG_PREFIX = "backend_option__"


def backend_flag_dest(backend: str, option_name: str) -> str:
    return f"{BACKEND_FLAG_PREFIX}{backend}__{option_name}"


def add_backend_flags(add_argument: Callable[..., Any]) -> None:
    """Every flag the registered backends declare; the value is kept under its backend's name."""
    from sdshape.backends import declared_flags

    for backend, declared in declared_flags():
        choices = f" ({'|'.join(declared.choices)})" if declared.choices else ""
        metavar = declared.name.upper()
        add_argument(
            declared.flag,
            dest=backend_flag_dest(backend, declared.name),
            metavar=metavar,
            help=f"{backend}: {declared.help}{choices}",
        )


def backend_flags(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """backend -> {option name: value} for every backend flag that was given."""
    found: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if key.startswith(BACKEND_FLAG_PREFIX) and value is not None:
            backend, _, name = key[len(BACKEND_FLAG_PREFIX) :].partition("__")
            found.setdefault(backend, {})[name] = value
    return found
