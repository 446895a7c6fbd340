"""The static model's traces per component, for many compositions at once (``sdshape shapes --gpu``).

``trace_cache.cached_static`` keeps one trace per *shape*; a budget's compositions share their components
(one text encoder beside every UNet, one VAE beside everything), so here each stage is traced once per
component, call inputs, compute dtype, VAE decode setting and tile, in this process and on disk beside the
shape traces (``static/components/``, keyed as they are: the configs, the model's code, sdshape's and torch's
versions). Steps and the weight format do not enter the key: a stage's calls per image are set afterwards,
and one trace carries every format of its compute dtype (``StageStatic.variants``).
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable
from pathlib import Path

import torch

from sdshape import __version__
from sdshape.backends.cache import cache_key, default_root
from sdshape.core.vocabulary import STAGE_OF_KIND, calls_per_image
from sdshape.feasibility.formats import FORMATS, WeightFormat
from sdshape.feasibility.static import ShapeStatic, StageStatic, _stage, tiles_per_side
from sdshape.feasibility.trace_cache import _model_code
from sdshape.models.call_inputs import call_shapes
from sdshape.models.families import family_of
from sdshape.models.zoo import ComponentSpec, ShapeSpec, shape_components
from sdshape.result.output import write_atomic

_PLAIN = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


class ComponentTraces:
    """Stage traces keyed by component; ``traced`` counts the traces this instance made (not read back)."""

    def __init__(self, progress: Callable[[str], None] | None = None, disk: bool = True):
        self.progress, self.disk = progress, disk
        self._stages: dict[str, StageStatic] = {}
        self.traced: list[str] = []  # one entry per stage traced here: "stage component dtype [tile]"
        self.read = 0  # stage traces read from disk

    def _key(self, kind: str, spec: ComponentSpec, family: str, inputs: dict, dtype: torch.dtype,
             vae_fp16: bool, tile: int | None) -> str:  # fmt: skip
        return cache_key({
            "model_code": _model_code(), "sdshape": __version__, "torch": torch.__version__, "kind": kind,
            "component": [spec.name, spec.library_class, spec.config], "family": family,
            "inputs": sorted((k, list(v)) for k, v in inputs.items()), "dtype": str(dtype),
            "vae_fp16": vae_fp16 and kind == "vae", "tile": tile,
        })  # fmt: skip

    def stage(self, kind: str, spec: ComponentSpec, specs: dict[str, ComponentSpec], inputs: dict,
              fmt: WeightFormat, vae_fp16: bool, tile: int | None = None) -> StageStatic:  # fmt: skip
        """One stage at the format's compute dtype (plain weights; ``ShapeStatic.as_format`` picks the format)."""
        family = family_of(specs["denoiser"])
        # What the family changes: a text encoder's module (how its outputs condition the denoiser), whether the
        # pipeline upcasts the VAE; a denoiser's family is its own, and the VAE's module is the same in any.
        context = {"text_encoder": family.name, "vae": f"upcasts={family.upcasts_vae(spec)}"}.get(kind, "")
        key = self._key(kind, spec, context, inputs, fmt.compute_dtype, vae_fp16, tile)
        if key in self._stages:
            return self._stages[key]
        path = default_root() / "static" / "components" / f"{spec.name}-{key[:16]}.pkl"
        stage = None
        if self.disk:
            try:
                found = pickle.loads(path.read_bytes())
                stage = found if isinstance(found, StageStatic) else None
                self.read += stage is not None
            except Exception:
                stage = None
        if stage is None:
            plain = FORMATS[_PLAIN[fmt.compute_dtype]]
            stage = _stage(kind, spec, family, inputs, 1, plain, vae_fp16, tile, self.progress)
            label = f"{STAGE_OF_KIND[kind]} {spec.name} {stage.dtype}" + (f" tile {tile}" if tile else "")
            self.traced.append(label + (f" for {family.name}" if kind == "text_encoder" else ""))
            if self.disk:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    write_atomic(path, pickle.dumps(stage))
                except OSError:
                    pass  # a read-only home still gets its answer
        self._stages[key] = stage
        return stage

    def shape(self, shape: ShapeSpec, resolution: int, steps: int, batch: int, fmt: WeightFormat,
              vae_fp16: bool = False, tiled: bool = False) -> ShapeStatic:  # fmt: skip
        """``static.static_shape`` (``tiled``: with ``with_tiled_decode``) from per-component traces, in ``fmt``."""
        specs = shape_components(shape)
        shapes = call_shapes(specs, batch, resolution, shape.sequence_length, shape.guidance_scale)
        stages = {}
        for kind, spec in specs.items():
            tile = None
            if tiled and kind == "vae":
                tile = min(resolution, int(spec.config.get("sample_size") or resolution))
            stage = self.stage(kind, spec, specs, shapes.for_kind(kind), fmt, vae_fp16, tile)
            stage = dataclasses.replace(stage, calls_per_image=calls_per_image(kind, steps), notes=list(stage.notes))
            if tile is not None:
                stage.repeats = batch * tiles_per_side(resolution, tile) ** 2
            stages[STAGE_OF_KIND[kind]] = stage
        plain = ShapeStatic(shape.name, resolution, steps, batch, _PLAIN[fmt.compute_dtype], shapes.guidance, stages)
        return plain.as_format(fmt)


def components_dir() -> Path:
    return default_root() / "static" / "components"
