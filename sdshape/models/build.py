"""Build components from zoo specs (random weights) or load them from a diffusers folder.

Random-weight construction never runs PyTorch's default init: modules are
created with parameters on the meta device (buffers stay real, on the CPU, so
things like CLIP's position ids keep their values), cast to the target dtype
while still free, allocated on the target device with ``to_empty`` and filled
by :func:`sdshape.models.build.fill_parameters`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate import init_empty_weights
from torch import nn

from sdshape.models.families import family_of
from sdshape.models.families.base import Family, TextEncoders, text_parts
from sdshape.models.quantize import logical_numel, store, stored_nbytes
from sdshape.models.stages import VAEDecode
from sdshape.models.zoo import ComponentKind, ComponentSpec, ShapeSpec, shape_components


def library_class(name: str) -> type:
    import diffusers
    import transformers

    for library in (diffusers, transformers):
        if hasattr(library, name):
            return getattr(library, name)
    raise ValueError(f"no library class named {name!r} in diffusers or transformers")


def import_classes(shape: ShapeSpec) -> None:
    """Import every library class a shape builds: a session does it before its memory baseline, so the
    baseline holds the Python modules (hundreds of MB of host RSS) and no model."""
    for spec in shape_components(shape).values():
        for part in text_parts(spec):
            library_class(part.library_class)


def instantiate(spec: ComponentSpec) -> nn.Module:
    """Create the library model for one (non-stacked) spec, under the caller's device context."""
    cls = library_class(spec.library_class)
    if hasattr(cls, "from_config") and hasattr(cls, "config_name"):  # a diffusers model
        return cls.from_config(dict(spec.config))
    return cls(cls.config_class(**spec.config))


def stage_module(
    spec: ComponentSpec, make: Callable[[ComponentSpec], nn.Module], family: Family | None = None
) -> nn.Module:
    """Wrap the component's model(s) in the stage module the backends see.

    A text encoder's module combines its outputs the way the denoiser's ``family`` is conditioned (with no
    family, the encoders are only held: enough to count them). A denoiser's is its family's step module.
    """
    if spec.kind == "text_encoder":
        encoders = [make(part) for part in text_parts(spec)]
        return family.text_module(encoders, spec) if family is not None else TextEncoders(encoders, spec)
    model = make(spec)
    if spec.kind == "denoiser":
        return family_of(spec).step_module(model, spec)
    return VAEDecode(model)


def meta_module(spec: ComponentSpec, family: Family | None = None) -> nn.Module:
    """The stage module entirely on the meta device: free to build, used for counting."""
    with torch.device("meta"):
        return stage_module(spec, instantiate, family)


def _materialize(module: nn.Module, device: torch.device, dtype: torch.dtype, seed: int) -> nn.Module:
    buffers = {name: buffer for name, buffer in module.named_buffers()}
    module.to(dtype)  # parameters are still on the meta device: free
    module.to_empty(device=device)
    fresh = dict(module.named_buffers())
    with torch.no_grad():
        for name, buffer in buffers.items():
            if buffer.device.type != "meta":
                fresh[name].copy_(buffer)
    fill_parameters(module, seed)
    return module.eval().requires_grad_(False)


@contextmanager
def _skip_default_init() -> Iterator[None]:
    """Make ``torch.nn.init`` functions no-ops while modules are constructed.

    ``init_empty_weights`` moves parameters to the meta device only after the
    module's constructor ran its default init on the CPU (3 s for the SD 1.5
    UNet). The values are overwritten anyway, so the init is skipped.
    """
    names = [n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {name: getattr(torch.nn.init, name) for name in names}
    try:
        for name in names:
            setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, function in saved.items():
            setattr(torch.nn.init, name, function)


def build_random(
    spec: ComponentSpec,
    device: torch.device,
    dtype: torch.dtype,
    seed: int = 0,
    family: Family | None = None,
    storage: str | None = None,
) -> nn.Module:
    """The stage module with random weights, allocated once on ``device`` in ``dtype`` (then stored in a
    quantized format, ``storage``, except the VAE's)."""
    with init_empty_weights(include_buffers=False), _skip_default_init():
        module = stage_module(spec, instantiate, family)
    module = _materialize(module, device, dtype, seed)
    return store(module, storage, spec.kind)


def count_params(module: nn.Module) -> int:
    return sum(logical_numel(p) for p in module.parameters())


_SPEC_PARAMS: dict[str, int] = {}


def spec_params(spec: ComponentSpec) -> int:
    """A spec's parameter count, counted on the meta device once per distinct spec: the explorer and
    ``compose`` ask for the same few hundred specs thousands of times (a meta build takes 0.1 s)."""
    key = repr(spec)
    if key not in _SPEC_PARAMS:
        _SPEC_PARAMS[key] = count_params(meta_module(spec))
    return _SPEC_PARAMS[key]


def weight_bytes(module: nn.Module) -> int:
    """Bytes of everything the module holds on its device: parameters and buffers (SD3's position table),
    a quantized weight's scales included."""
    return sum(stored_nbytes(t) for t in [*module.parameters(), *module.buffers()])


def count_buffers(module: nn.Module) -> int:
    """Elements of the floating-point buffers a module holds (SD3's and PixArt's position tables): in its
    weight bytes, not its parameters. Integer buffers (CLIP's 77 position ids) are left out."""
    return sum(b.numel() for b in module.buffers() if b.is_floating_point())


@dataclass
class BuiltShape:
    """A shape's three stage modules on one device, in one dtype, plus how to schedule them."""

    name: str
    modules: dict[ComponentKind, nn.Module]
    specs: dict[ComponentKind, ComponentSpec]
    scheduler_config: dict[str, Any]
    weights: str = "random"
    build_s: dict[ComponentKind, float] = field(default_factory=dict)

    @property
    def family(self) -> Family:
        return family_of(self.specs["denoiser"])

    @property
    def text_encoder(self) -> nn.Module:
        return self.modules["text_encoder"]

    @property
    def denoiser(self) -> nn.Module:
        return self.modules["denoiser"]

    @property
    def vae(self) -> VAEDecode:
        return self.modules["vae"]  # type: ignore[return-value]


def build_shape(
    shape: ShapeSpec,
    device: torch.device,
    dtype: torch.dtype,
    seed: int = 0,
    on_component: Callable[[ComponentKind, ComponentSpec], None] | None = None,
    vae_dtype: torch.dtype | None = None,
    storage: str | None = None,
) -> BuiltShape:
    """Build all three components of a zoo shape with random weights (the VAE in ``vae_dtype`` if given;
    the others stored in ``storage``, a quantized format, if given)."""
    specs = shape_components(shape)
    family = family_of(specs["denoiser"])
    dtypes = {kind: (vae_dtype or dtype) if kind == "vae" else dtype for kind in specs}
    modules, timings = make_each(
        specs, lambda s: build_random(s, device, dtypes[s.kind], seed, family, storage), on_component
    )
    return BuiltShape(shape.name, modules, specs, dict(shape.scheduler), build_s=timings)


def make_each(
    specs: dict[ComponentKind, ComponentSpec],
    make: Callable[[ComponentSpec], nn.Module],
    on_component: Callable[[ComponentKind, ComponentSpec], None] | None,
) -> tuple[dict[ComponentKind, nn.Module], dict[ComponentKind, float]]:
    """Make every component in order, announcing each and timing its build."""
    modules: dict[ComponentKind, nn.Module] = {}
    timings: dict[ComponentKind, float] = {}
    for kind, spec in specs.items():
        if on_component:
            on_component(kind, spec)
        start = time.perf_counter()
        modules[kind] = make(spec)
        timings[kind] = time.perf_counter() - start
    return modules, timings


POOL_SIZE = 1_048_573  # a prime, so slices do not line up with row lengths


def _pool(seed: int, device: torch.device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    pool = torch.rand(POOL_SIZE, generator=generator, dtype=torch.float32).mul_(2).sub_(1)
    # Doubled so that any slice of up to POOL_SIZE from any offset is contiguous.
    return torch.cat([pool, pool]).to(device)


@torch.no_grad()
def fill_parameters(module: nn.Module, seed: int = 0) -> None:
    """Give every parameter of ``module`` deterministic random values in place."""
    params = list(module.named_parameters())
    if not params:
        return
    pool = _pool(seed, params[0][1].device)
    for index, (name, param) in enumerate(params):
        if param.ndim <= 1:
            # Norm scales and all biases: the standard init (ones, zeros).
            param.fill_(1.0 if name.endswith("weight") else 0.0)
            continue
        bound = 1.0 / math.sqrt(param[0].numel())
        offset = (index * 7919) % POOL_SIZE
        flat = param.view(-1)
        for start in range(0, flat.numel(), POOL_SIZE):
            chunk = flat[start : start + POOL_SIZE]
            source = pool[offset : offset + chunk.numel()]
            torch.mul(source, bound, out=chunk) if chunk.dtype == source.dtype else chunk.copy_(source * bound)
