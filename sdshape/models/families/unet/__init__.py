"""The UNet family: Stable Diffusion 1.x, 2.x and XL, and UNets derived from them (BK-SDM, scaled),
as diffusers' StableDiffusionPipeline and StableDiffusionXLPipeline run them.

Torch-free: the zoo's data. The call contract is in ``family.py``.
"""

from __future__ import annotations

from sdshape.models.families.unet.zoo import DENOISERS, SHAPES

__all__ = ["COMPONENTS", "DENOISER_CLASSES", "NAME", "SHAPES", "make_family"]

NAME = "unet"
DENOISER_CLASSES = ("UNet2DConditionModel",)
COMPONENTS = DENOISERS


def make_family():
    from sdshape.models.families.unet.family import UNetFamily

    return UNetFamily()
