"""The FLUX family: rectified-flow transformers on CLIP-L + T5-XXL (FLUX.1 dev, schnell), as FluxPipeline
runs them. Torch-free: the zoo's data; the call contract is in ``family.py``."""

from __future__ import annotations

from sdshape.models.families.flux.zoo import COMPONENTS, SHAPES

__all__ = ["COMPONENTS", "DENOISER_CLASSES", "NAME", "SHAPES", "make_family"]

NAME = "flux"
DENOISER_CLASSES = ("FluxTransformer2DModel",)


def make_family():
    from sdshape.models.families.flux.family import FluxFamily

    return FluxFamily()
