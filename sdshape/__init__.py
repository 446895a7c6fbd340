"""sdshape: where a diffusion model's parameters, milliseconds, megabytes and joules go."""

import logging

__version__ = "0.1.0"

# torchao (installed for --precision int8) logs on import that its CUDA-only kernels do not load on a CPU,
# torch that torchao registers enums the old way, and diffusers that it cannot import torchao's checkpoint
# classes: none concerns a run, and each would print on every command that imports diffusers.
for _name in ("torchao", "torch.utils._pytree", "diffusers.quantizers.torchao.torchao_quantizer"):
    logging.getLogger(_name).setLevel(logging.ERROR)
