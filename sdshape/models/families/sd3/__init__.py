"""The SD3 family: MMDiTs on three text encoders (SD3, SD3.5), as StableDiffusion3Pipeline runs them.
Torch-free: the zoo's data; the call contract is in ``family.py``."""

from __future__ import annotations

from sdshape.models.families.sd3.zoo import COMPONENTS, SHAPES

__all__ = ["COMPONENTS", "DENOISER_CLASSES", "NAME", "SHAPES", "make_family"]

NAME = "sd3"
DENOISER_CLASSES = ("SD3Transformer2DModel",)


def make_family():
    from sdshape.models.families.sd3.family import SD3Family

    return SD3Family()
