"""The run options, defined once for ``sdshape run`` and ``pytest bench/``.

Each option is declared here with its flag, type, default and help; both
harnesses add the same declarations to their parsers (argparse's
``add_argument`` and pytest's ``addoption`` take the same arguments), and both
turn the parsed values into a :class:`~sdshape.config.plan.Plan` with
:func:`plan_from`. Options a backend declares (``--compile-mode``,
``--ort-provider``, ...) come from the backends themselves.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sdshape.core.vocabulary import DEVICES, PRECISION_NAMES


@dataclass(frozen=True)
class RunOption:
    flag: str
    dest: str
    help: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    bench: bool = True  # also an option of `pytest bench/`
    aliases: tuple[str, ...] = ()  # older spellings that keep working

    def add(self, add_argument: Callable[..., Any]) -> None:
        add_argument(self.flag, *self.aliases, dest=self.dest, help=self.help, **self.kwargs)


INT = {"type": int}
RUN_OPTIONS: tuple[RunOption, ...] = (
    RunOption("--shape", "shape", "zoo shape (default sd15), or a name from --shapes-file; see `sdshape zoo`"),
    RunOption("--text-encoder", "text_encoder", "swap in any zoo text encoder (e.g. t5-v1.1-large)"),
    RunOption(
        "--denoiser",
        "denoiser",
        "swap in any zoo denoiser, UNet or transformer (e.g. bk-sdm-small); its text conditioning is adapted",
        aliases=("--unet",),
    ),
    RunOption("--vae", "vae", "swap in any zoo VAE (e.g. taesd)"),
    RunOption("--seq-len", "seq_len", "text sequence length (default 77; CLIP's maximum, T5 has none)", INT),
    RunOption("--shapes-file", "shapes_file", "TOML of named compositions: [shape.NAME] text_encoder, unet, vae"),
    RunOption("--backend", "backend", "backend, or a comma list with variants (default eager)", {"default": "eager"}),
    RunOption("--precision", "precision", f"{'|'.join(PRECISION_NAMES)} (default fp16 on a GPU, fp32 on the CPU)"),
    RunOption(
        "--vae-fp16",
        "vae_fp16",
        "decode in fp16 even where the pipeline upcasts the VAE to fp32 (SDXL's force_upcast; the fp16-fix VAE's way)",
        {"action": "store_true"},
    ),
    RunOption("--device", "device", f"{'|'.join(DEVICES)} (default: the GPU if there is one)"),
    RunOption("--resolution", "resolution", "image side in pixels, a multiple of 8 (default: native; 256 on CPU)", INT),
    RunOption("--steps", "steps", "denoising steps (default 50 on a GPU, 3 on the CPU)", INT),
    RunOption("--batch", "batch", "images per prompt batch (default 1)", {"type": int, "default": 1}),
    RunOption(
        "--rounds",
        "rounds",
        "timed rounds per stage, or auto: until the median's 95%% CI is within --target-ci "
        "(default auto on a GPU, 3 on the CPU)",
    ),
    RunOption(
        "--target-ci",
        "target_ci",
        "--rounds auto stops once the median's 95%% CI is within this fraction of it (default 0.01)",
        {"type": float, "default": 0.01},
    ),
    RunOption(
        "--max-rounds", "max_rounds", "--rounds auto: at most this many rounds (default 100)", {**INT, "default": 100}
    ),
    RunOption(
        "--max-time",
        "max_time",
        "--rounds auto: at most this many seconds per stage (default 60)",
        {"type": float, "default": 60.0},
    ),
    RunOption(
        "--profile",
        "profile",
        "one profiled round per stage: GPU busy fraction and time by kernel class (default on a GPU; --no-profile)",
        {"action": argparse.BooleanOptionalAction, "default": None},
    ),
    RunOption("--warmup", "warmup", "untimed warm-up rounds per stage (default 2 on a GPU, 1 on the CPU)", INT),
    RunOption("--weights", "weights", "local diffusers pipeline folder to load instead of random weights"),
    RunOption("--seed", "seed", "seed for weights and inputs (default 0)", {"type": int, "default": 0}),
    RunOption("--cache-dir", "cache_dir", "exported models and engines (default $SDSHAPE_CACHE_DIR, ~/.cache/sdshape)"),
    RunOption("--no-parity", "parity", "skip the comparison with eager fp32 outputs", {"action": "store_false"}),
    RunOption("--vram-cap", "vram_cap", "GPU only: emulate a smaller card, e.g. 8GiB; records per stage fit or OOM"),
    RunOption(
        "--sample-interval",
        "sample_interval",
        "seconds between the sampler's readings (default 0.02; 0: no sampler thread, open/close readings only)",
        {"type": float, "default": 0.02},
    ),
    RunOption(
        "--force-size",
        "force_size",
        "run sizes whose estimated memory exceeds the device's (by default they are refused up front)",
        {"action": "store_true", "default": False},
    ),
    RunOption(
        "--isolate",
        "isolate",
        "run each backend (and the parity reference) in a fresh process, so every baseline starts clean",
        {"action": "store_true", "default": False},
        bench=False,
    ),
    RunOption("--json", "json_path", "write results here (pytest-benchmark JSON schema)", bench=False),
    RunOption(
        "--save",
        "save",
        "also store the results under --results-dir, never overwriting",
        {"action": "store_true", "default": False},
        bench=False,
    ),
    RunOption(
        "--results-dir", "results_dir", "where --save stores (default results/)", {"default": "results"}, bench=False
    ),
)


def backend_flag_dest(option_name: str) -> str:
    return f"backend_option_{option_name}"


def add_run_options(add_argument: Callable[..., Any], bench: bool = False) -> None:
    """Add every run option (``bench``: only those ``pytest bench/`` takes) and the backends' flags."""
    from sdshape.backends import declared_flags

    for option in RUN_OPTIONS:
        if option.bench or not bench:
            option.add(add_argument)
    seen: set[str] = set()
    for backend, option in declared_flags():
        if option.flag in seen:
            continue
        seen.add(option.flag)
        choices = f" ({'|'.join(option.choices)})" if option.choices else ""
        metavar = option.flag.lstrip("-").upper().replace("-", "_")
        help_text = f"{backend}: {option.help}{choices}"
        add_argument(option.flag, dest=backend_flag_dest(option.name), metavar=metavar, help=help_text)


def backend_flags(values: Mapping[str, Any]) -> dict[str, Any]:
    """Option name -> value for every backend flag that was given."""
    prefix = backend_flag_dest("")
    return {key[len(prefix) :]: value for key, value in values.items() if key.startswith(prefix) and value is not None}


def plan_from(values: Mapping[str, Any]) -> Any:
    """The :class:`~sdshape.config.plan.Plan` for parsed run options (argparse's or pytest's)."""
    from sdshape.config.plan import resolve

    return resolve(
        shape=values.get("shape"),
        backend=values.get("backend") or "eager",
        precision=values.get("precision"),
        device=values.get("device"),
        resolution=values.get("resolution"),
        steps=values.get("steps"),
        batch=values.get("batch", 1),
        rounds=values.get("rounds"),
        warmup=values.get("warmup"),
        weights=values.get("weights"),
        seed=values.get("seed", 0),
        backend_flags=backend_flags(values),
        cache_dir=values.get("cache_dir"),
        parity=values.get("parity", True),
        vram_cap=values.get("vram_cap"),
        text_encoder=values.get("text_encoder"),
        denoiser=values.get("denoiser"),
        vae=values.get("vae"),
        sequence_length=values.get("seq_len"),
        shapes_file=values.get("shapes_file"),
        sample_interval=values.get("sample_interval", 0.02),
        isolate=values.get("isolate", False),
        force_size=values.get("force_size", False),
        target_ci=values.get("target_ci", 0.01),
        max_rounds=values.get("max_rounds", 100),
        max_time=values.get("max_time", 60.0),
        profile=values.get("profile"),
        vae_fp16=values.get("vae_fp16", False),
    )
