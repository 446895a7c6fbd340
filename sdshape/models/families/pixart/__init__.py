"""The PixArt family: DiTs with T5 cross-attention (PixArt-α, PixArt-Σ), as PixArtAlphaPipeline and
PixArtSigmaPipeline run them. Torch-free: the zoo's data; the call contract is in ``family.py``."""

from __future__ import annotations

from sdshape.models.families.pixart.zoo import DENOISERS, SHAPES

__all__ = ["COMPONENTS", "DENOISER_CLASSES", "NAME", "SHAPES", "make_family"]

NAME = "pixart"
DENOISER_CLASSES = ("PixArtTransformer2DModel",)
COMPONENTS = DENOISERS


def make_family():
    from sdshape.models.families.pixart.family import PixArtFamily

    return PixArtFamily()
