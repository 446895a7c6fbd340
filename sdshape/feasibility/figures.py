"""Published measurements (``sdshape/data/public_figures.toml``) as data, each with its conditions and source.

A figure's conditions are what the model is asked: card, shape, resolution, steps, batch, weight format
(and which components it quantized), residency policy, VAE tiling, compile or eager, and the host class.
A memory figure also names its counter (``allocated``: ``torch.cuda.max_memory_allocated``;
``reserved``: the caching allocator's peak; ``unstated``): only figures whose counter is known are held to
the memory target, the others are shown as a range check.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources

# loop_it_s: denoising steps per second of the loop alone; e2e_s: seconds for one pipeline call (the whole
# batch); peak_gib: the call's memory peak (GiB, by ``counter``); weights_gib: memory allocated once the
# pipeline is loaded (the weights); oom: the card could not run the call at all (value 1).
KINDS = ("loop_it_s", "e2e_s", "peak_gib", "peak_allocated_gib", "weights_gib", "oom")
ROLES = ("calibration", "validation")
COUNTERS = ("allocated", "reserved", "unstated")
CALIBRATES = ("architecture", "host", "link", "dequant")


@dataclass(frozen=True)
class Figure:
    id: str
    gpu: str
    shape: str
    resolution: int
    steps: int
    kind: str
    value: float
    backend: str
    role: str
    software: str
    source: str
    precision: str = "fp16"
    batch: int = 1
    policy: str = "all_resident"
    vae_tiling: bool = False
    quantized: tuple[str, ...] | None = None  # components in the format; None: the format's own rule
    counter: str = "allocated"
    keep_fp32: bool | None = None  # the libraries of the day held _keep_in_fp32_modules in fp32 (transformers 4)
    host: str | None = None  # None: a GeForce card's desktop, else a server
    calibrates: str | None = None  # for role "calibration": which number it fits
    note: str = ""
    tags: tuple[str, ...] = field(default=())

    @property
    def unit(self) -> str:
        return {"loop_it_s": "it/s", "e2e_s": "s", "oom": "OOM"}.get(self.kind, "GiB")

    @property
    def host_class(self) -> str:
        if self.host is not None:
            return self.host
        return "desktop" if self.gpu.upper().startswith("RTX") else "server"

    @property
    def timed(self) -> bool:
        return self.kind in ("loop_it_s", "e2e_s")


def _figure(entry: dict) -> Figure:
    entry = dict(entry)
    for key in ("quantized", "tags"):
        if key in entry:
            entry[key] = tuple(entry[key])
    if entry.get("kind") == "peak_allocated_gib":
        entry["counter"] = "allocated"
    return Figure(**entry)


def public_figures() -> list[Figure]:
    text = resources.files("sdshape.data").joinpath("public_figures.toml").read_text()
    figures = [_figure(entry) for entry in tomllib.loads(text)["figure"]]
    seen: set[str] = set()
    for figure in figures:
        if figure.kind not in KINDS or figure.role not in ROLES or figure.counter not in COUNTERS:
            raise ValueError(f"public_figures.toml: {figure.id}: kind, role or counter not one of the known")
        if figure.role == "calibration" and figure.calibrates not in CALIBRATES:
            raise ValueError(f"public_figures.toml: {figure.id}: calibrates must be one of {CALIBRATES}")
        if figure.id in seen:
            raise ValueError(f"public_figures.toml: {figure.id} appears twice")
        seen.add(figure.id)
    return figures
