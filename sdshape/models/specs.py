"""Data types of the zoo: what a component and a shape are.

A component is a config plus the library class that builds it; weights are never
part of the spec (they are random, or loaded with ``--weights``). Every spec names
its ``source``: the published config it was copied from, field by field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ComponentKind = Literal["text_encoder", "denoiser", "vae"]  # sdshape.core.vocabulary.KINDS


@dataclass(frozen=True)
class ComponentSpec:
    """One learned part, buildable from ``config`` by ``library_class``.

    A text encoder may be a stack of ``parts`` (SDXL runs two CLIP encoders and
    concatenates their hidden states); its own ``config`` is then empty.
    """

    name: str
    kind: ComponentKind
    library_class: str
    config: dict[str, Any]
    source: str
    description: str
    parts: tuple[ComponentSpec, ...] = ()
    # Text encoders: which hidden state feeds the UNet ("last" after the final
    # layer norm, as SD 1.x/2.x do; "penultimate", as SDXL does) and whether the
    # last part's projected pooled output is used (SDXL's text_embeds).
    hidden_layer: Literal["last", "penultimate"] = "last"
    pooled: bool = False

    @property
    def is_stack(self) -> bool:
        return bool(self.parts)


@dataclass(frozen=True)
class ShapeSpec:
    """A composition: text encoder + denoiser + VAE + scheduler, with its pipeline's defaults.

    ``steps``, ``guidance_scale``, ``native_resolution`` and ``sequence_length`` are those of the
    model's diffusers pipeline (``num_inference_steps``, ``guidance_scale``, the default height and
    ``max_sequence_length``). Which family runs the denoiser follows from its library class
    (``sdshape.models.families.family_of``).
    """

    name: str
    text_encoder: str
    denoiser: str
    vae: str
    scheduler: dict[str, Any]
    native_resolution: int
    description: str
    source: str
    sequence_length: int = 77
    steps: int = 50
    guidance_scale: float = 7.5
    tags: tuple[str, ...] = field(default_factory=tuple)
    # A composition carries its (possibly adapted) component specs; named shapes look theirs up.
    specs: dict[str, ComponentSpec] | None = None
    notes: tuple[str, ...] = ()
    # The year the system was published; None for compositions, tiny and test shapes. The published systems
    # (``sdshape.models.zoo.published_shapes``) are the shapes with a year, and every list of them derives
    # from it: inspect --all, the field chart, the feasibility matrix.
    year: int | None = None

    def components(self) -> dict[str, str]:
        return {"text_encoder": self.text_encoder, "denoiser": self.denoiser, "vae": self.vae}
