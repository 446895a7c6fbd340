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
from sdshape.models.config_check import check_config, config_class
from sdshape.models.families import family_name_of, get_family, registered
from sdshape.models.families.base import Family
from sdshape.models.quantize import store
from sdshape.models.zoo import ComponentKind, ComponentSpec, ShapeSpec


def read_config(path: Path) -> dict[str, Any]:
    """A config file of a --weights folder: a JSON object, or a one-line usage error naming the file."""
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"--weights: cannot read {path}: {error}") from None
    if not isinstance(config, dict):
        raise UsageError(f"--weights: {path} is not a config (expected a JSON object, got a {type(config).__name__})")
    return config


def _class_of(config: dict[str, Any], path: Path, kind: str, default_class: str) -> str:
    """The library class a config names (``architectures[0]`` for a text encoder, ``_class_name`` else)."""
    if kind == "text_encoder":
        named = config.get("architectures") or [default_class]
        if not isinstance(named, list) or not named or not isinstance(named[0], str):
            raise UsageError(f"--weights: {path}: field 'architectures' is {named!r}; expected a list of class names")
        name = named[0]
    else:
        name = config.get("_class_name", default_class)
        if not isinstance(name, str) or not name:
            raise UsageError(f"--weights: {path}: field '_class_name' is {name!r}; expected a class name")
    return name


def checked_config(path: Path, kind: str, default_class: str) -> tuple[dict[str, Any], str]:
    """A component's config and class name, every field checked against the types its class's constructor
    declares (:mod:`sdshape.models.config_check`): a bad value is one line naming the file and the field."""
    config = read_config(path)
    name = _class_of(config, path, kind, default_class)
    try:
        cls = library_class(name)
    except ValueError:
        raise UsageError(f"--weights: {path}: no diffusers or transformers class named {name!r}") from None
    check_config(config, config_class(cls), f"--weights: {path}")
    return config, name


def _spec_from_config(name: str, kind: ComponentKind, folder: Path, default_class: str, **extra: Any) -> ComponentSpec:
    config, library_class_name = checked_config(folder / "config.json", kind, default_class)
    return ComponentSpec(
        name, kind, library_class_name, config, source=str(folder), description=f"loaded from {folder}", **extra
    )


def _denoiser_folder(folder: Path) -> tuple[Path, Family]:
    """The folder holding the denoiser (``unet/`` or ``transformer/``, as the families lay them out) and its
    family, from the config's ``_class_name``."""
    layouts = {
        sub: module.NAME for module in registered() for sub in get_family(module.NAME).weights_folders["denoiser"]
    }
    for sub in dict.fromkeys(layouts):
        config_file = folder / sub / "config.json"
        if config_file.is_file():
            default = "UNet2DConditionModel" if sub == "unet" else ""
            _, name = checked_config(config_file, "denoiser", default)
            try:
                return folder / sub, get_family(family_name_of(name))
            except UsageError as error:
                raise UsageError(f"--weights: {config_file}: field '_class_name': {error}") from None
    wanted = " or ".join(f"{sub}/config.json" for sub in dict.fromkeys(layouts))
    raise UsageError(f"--weights {folder}: not a diffusers pipeline folder (no {wanted})")


def check_folder(folder: Path) -> tuple[Path, Family]:
    """Check a pipeline folder before anything is built: its layout, and every config it holds (the text
    encoders, the denoiser, the VAE, the scheduler and ``model_index.json``) field by field."""
    folder = Path(folder)
    denoiser_dir, family = _denoiser_folder(folder)
    missing = [sub for sub in ("text_encoder", "vae") if not (folder / sub / "config.json").is_file()]
    if missing:
        raise UsageError(
            f"--weights {folder}: not a diffusers pipeline folder (no {', '.join(s + '/config.json' for s in missing)})"
        )
    for sub in family.weights_folders["text_encoder"]:
        if (folder / sub / "config.json").is_file():
            checked_config(folder / sub / "config.json", "text_encoder", "CLIPTextModel")
    checked_config(folder / "vae" / "config.json", "vae", "AutoencoderKL")
    scheduler = folder / "scheduler" / "scheduler_config.json"
    if scheduler.is_file():
        import diffusers

        config = read_config(scheduler)
        name = config.get("_class_name")
        if isinstance(name, str) and isinstance(getattr(diffusers, name, None), type):
            check_config(config, getattr(diffusers, name), f"--weights: {scheduler}")
    index = folder / "model_index.json"
    if index.is_file():
        name = read_config(index).get("_class_name", "")
        if not isinstance(name, str):
            raise UsageError(f"--weights: {index}: field '_class_name' is {name!r}; expected a pipeline class name")
    return denoiser_dir, family


def weights_native_resolution(folder: Path) -> int:
    """Check that ``folder`` is a diffusers pipeline with sound configs; return its native image side."""
    folder = Path(folder)
    denoiser_dir, _ = check_folder(folder)
    denoiser = read_config(denoiser_dir / "config.json")
    vae = read_config(folder / "vae" / "config.json")
    sample = denoiser.get("sample_size") or (128 if denoiser_dir.name == "transformer" else 64)
    if isinstance(sample, list | tuple):  # a (height, width) pair: its longer side
        sample = max(sample)
    levels = vae.get("block_out_channels") or [0] * 4
    return int(sample) * 2 ** (len(levels) - 1)


def folder_configs(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The folder's scheduler config (training timesteps; empty without one) and its VAE config."""
    scheduler = folder / "scheduler" / "scheduler_config.json"
    return (read_config(scheduler) if scheduler.is_file() else {}), read_config(folder / "vae" / "config.json")


def folder_upcasts_vae(folder: Path, vae_config: dict[str, Any]) -> bool:
    """Whether the folder's pipeline decodes an fp16 run in fp32: StableDiffusionXLPipeline does when the
    VAE's config says ``force_upcast`` (diffusers' default is True); no other pipeline does."""
    index = folder / "model_index.json"
    pipeline = json.loads(index.read_text()).get("_class_name", "") if index.is_file() else ""
    return "XL" in pipeline and bool(vae_config.get("force_upcast", True))


def folder_components(folder: Path) -> tuple[dict[ComponentKind, ComponentSpec], Family]:
    """The component specs a pipeline folder's configs describe (checked), and the denoiser's family."""
    folder = Path(folder)
    denoiser_dir, family = check_folder(folder)
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
    return specs, family


def folder_shape(folder: str | Path) -> ShapeSpec:
    """The composition a pipeline folder holds, as the zoo describes one (the static model traces it before a
    ``--weights`` run allocates anything); its pipeline defaults are SD's, as the run's."""
    folder = Path(folder)
    specs, _ = folder_components(folder)
    scheduler_file = folder / "scheduler" / "scheduler_config.json"
    return ShapeSpec(
        f"weights:{folder.name}",
        specs["text_encoder"].name,
        specs["denoiser"].name,
        specs["vae"].name,
        read_config(scheduler_file) if scheduler_file.is_file() else {},
        weights_native_resolution(folder),
        f"loaded from {folder}",
        str(folder),
        specs=dict(specs),
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
    specs, family = folder_components(folder)
    label = folder.name

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
