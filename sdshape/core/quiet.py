"""Keep the model libraries' import-time chatter out of sdshape's own output.

bitsandbytes, torchao, diffusers and torch log warnings when they are imported on a machine without
their optional kernels ("Failed to load CPU gemm_4bit_forward from kernels-community", torchao's missing
CUDA extensions, torch's pytree deprecations). None of it is about what the user asked, so the command line
raises those loggers to errors; a library used from Python keeps its own settings.
"""

from __future__ import annotations

import logging
import os

LOGGERS = ("bitsandbytes", "torchao", "torch.utils._pytree", "diffusers", "transformers", "accelerate")


def quiet_libraries() -> None:
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
