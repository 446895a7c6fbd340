"""Load a local diffusers pipeline folder (``--weights``), laid out as its family lays it out.

Apart from :mod:`sdshape.models.build` (random weights from zoo specs) because it reads files, not specs: the
folder's configs name the classes, ``model_index.json`` names the pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sdshape.core.errors import UsageError
from sdshape.models.build import BuiltShape, library_class, make_each, stage_module
from sdshape.models.families import REGISTERED, family_name_of, get_family
from sdshape.models.families.base import Family
from sdshape.models.quantize import store
from sdshape.models.zoo import ComponentKind, ComponentSpec


def read_config(path: Path) -> dict[str, Any]:
    """A config file of a --weights folder: a JSON object, or a one-line usage error naming the file."""
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"--weights: cannot read {path}: {error}") from None
    if not isinstance(config, dict):
        raise UsageError(f"--weights: {path} is not a config (expected a JSON object, got a {type(config).__name__})")
    return config


def _spec_from_config(name: str, kind: ComponentKind, folder: Path, default_class: str, **extra: Any) -> ComponentSpec:
    config = read_config(folder / "config.json")
    if kind == "text_encoder":
        library_class = (config.get("architectures") or [default_class])[0]
    else:
        library_class = config.get("_class_name", default_class)
    return ComponentSpec(
        name, kind, library_class, config, source=str(folder), description=f"loaded from {folder}", **extra
    )


def _denoiser_folder(folder: Path) -> tuple[Path, Family]:
    """The folder holding the denoiser (``unet/`` or ``transformer/``, as the families lay them out) and its
    family, from the config's ``_class_name``."""
    layouts = {sub: module.NAME for module in REGISTERED for sub in get_family(module.NAME).weights_folders["denoiser"]}
    for sub in dict.fromkeys(layouts):
        config_file = folder / sub / "config.json"
        if config_file.is_file():
            config = read_config(config_file)
            default = "UNet2DConditionModel" if sub == "unet" else ""
            return folder / sub, get_family(family_name_of(config.get("_class_name", default)))
    wanted = " or ".join(f"{sub}/config.json" for sub in dict.fromkeys(layouts))
    raise UsageError(f"--weights {folder}: not a diffusers pipeline folder (no {wanted})")


def weights_native_resolution(folder: Path) -> int:
    """Check that ``folder`` looks like a diffusers pipeline; return its native image side."""
    folder = Path(folder)
    denoiser_dir, _ = _denoiser_folder(folder)
    missing = [sub for sub in ("text_encoder", "vae") if not (folder / sub / "config.json").is_file()]
    if missing:
        raise UsageError(
            f"--weights {folder}: not a diffusers pipeline folder (no {', '.join(s + '/config.json' for s in missing)})"
        )
    denoiser = read_config(denoiser_dir / "config.json")
    vae = read_config(folder / "vae" / "config.json")
    return int(denoiser.get("sample_size", 128 if denoiser_dir.name == "transformer" else 64)) * 2 ** (
        len(vae.get("block_out_channels", [0] * 4)) - 1
    )


def load_weights(
    folder: Path,
    device: torch.device,
    dtype: torch.dtype,
    on_component: Callable[[ComponentKind, ComponentSpec], None] | None = None,
    vae_dtype: torch.dtype | None = None,
    storage: str | None = None,
) -> BuiltShape:
    """Load a local diffusers pipeline folder, laid out as its family lays it out (``unet/`` or
    ``transformer/``, ``text_encoder[_2][_3]/``, ``vae/``)."""
    folder = Path(folder)
    weights_native_resolution(folder)
    denoiser_dir, family = _denoiser_folder(folder)
    label = folder.name
    te_parts = [
        _spec_from_config(f"{label}/{sub}", "text_encoder", folder / sub, "CLIPTextModel")
        for sub in family.weights_folders["text_encoder"]
        if (folder / sub / "config.json").is_file()
    ]
    text_spec = te_parts[0]
    if len(te_parts) > 1:
        text_spec = ComponentSpec(
            f"{label}/text_encoders",
            "text_encoder",
            "stack",
            {},
            source=str(folder),
            description=f"loaded from {folder}",
            parts=tuple(te_parts),
            hidden_layer="penultimate",  # SDXL's pair; the other families choose per encoder
            pooled=True,
        )
    specs: dict[ComponentKind, ComponentSpec] = {
        "text_encoder": text_spec,
        "denoiser": _spec_from_config(f"{label}/{denoiser_dir.name}", "denoiser", denoiser_dir, "UNet2DConditionModel"),
        "vae": _spec_from_config(f"{label}/vae", "vae", folder / "vae", "AutoencoderKL"),
    }

    def load(spec: ComponentSpec) -> nn.Module:
        # A loaded spec's source is its own subfolder (see _spec_from_config).
        cls = library_class(spec.library_class)
        try:
            model = cls.from_pretrained(spec.source, torch_dtype=(vae_dtype or dtype) if spec.kind == "vae" else dtype)
        except (OSError, ValueError, RuntimeError) as error:
            raise UsageError(f"--weights: cannot load {spec.source}: {str(error).splitlines()[0]}") from None
        return model.to(device).eval().requires_grad_(False)

    modules, timings = make_each(specs, lambda s: store(stage_module(s, load, family), storage, s.kind), on_component)
    scheduler_file = folder / "scheduler" / "scheduler_config.json"
    scheduler = read_config(scheduler_file) if scheduler_file.is_file() else {}
    return BuiltShape(f"weights:{label}", modules, specs, scheduler, weights=str(folder), build_s=timings)
