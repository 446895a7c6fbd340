"""A toy Sana family, registered from tests/ with one line: ``sdshape.models.families.register(sana)``.

Sana (arXiv 2410.10629) is the architecture the built-in families do not have: a linear-attention DiT
(``SanaTransformer2DModel``), a decoder-only LLM as its text encoder (Gemma 2, the ``decoder_llm`` text
kind) read with a complex human instruction prepended to the prompt, and a deep-compression autoencoder
(``AutoencoderDC``) instead of AutoencoderKL. Run as diffusers' SanaPipeline runs it, with tiny configs.

Torch-free, as every family's ``__init__`` is: the zoo's data; the call contract is in ``family.py``.
Relative imports keep the folder movable (into a plugin package, say).
"""

from __future__ import annotations

from .zoo import COMPONENTS, SHAPES

__all__ = ["COMPONENTS", "DENOISER_CLASSES", "NAME", "SHAPES", "make_family"]

NAME = "sana"
DENOISER_CLASSES = ("SanaTransformer2DModel",)


def make_family():
    from .family import SanaFamily

    return SanaFamily()
