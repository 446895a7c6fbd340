"""The GPU catalog: VRAM, bandwidth and tensor rates of the cards a feasibility report covers, each sourced.

Bundled in ``sdshape/data/gpus.toml``; ``--gpu-catalog FILE`` adds cards of the
same form. A malformed entry is a one-line usage error.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sdshape.core.bounds import Bounds
from sdshape.core.errors import UsageError, choices_error
from sdshape.core.units import GIB

# Each figure's range, wide around every card sold (the bundled ones span 8-141 GiB, 272-4800 GB/s and
# 25-989 TFLOP/s): a figure outside is a unit slip or a typo, and would give no answer or an infinite one.
REQUIRED = {
    "vram_gib": Bounds(float, 0.5, 4096, unit="GiB"),
    "bandwidth_gbs": Bounds(float, 10, 100_000, unit="GB/s"),
    "fp16_tflops_fp32_acc": Bounds(float, 0.1, 100_000, unit="TFLOP/s"),
    "fp16_tflops_fp16_acc": Bounds(float, 0.1, 100_000, unit="TFLOP/s"),
}
SMS = Bounds(int, 1, 999)
# What the static model (``sdshape fit``) also needs; a user's card without them is still a catalog card.
ARCHITECTURES = ("turing", "ampere", "ada", "hopper", "blackwell")
FP8_ARCHITECTURES = ("ada", "hopper", "blackwell")  # fp8 tensor cores: compute in fp8 needs one of these
OPTIONAL = ("architecture", "sms", "pcie")
PCIE_GBS_PER_LANE = {3: 0.985, 4: 1.969, 5: 3.938}  # GB/s per lane after 128b/130b encoding (PCI-SIG)


@dataclass(frozen=True)
class GPU:
    name: str
    vram_gib: float
    bandwidth_gbs: float
    fp16_tflops_fp32_acc: float
    fp16_tflops_fp16_acc: float
    source: str
    architecture: str | None = None
    sms: int | None = None
    pcie: str | None = None  # "4.0 x16"

    @property
    def pcie_bytes_per_s(self) -> float | None:
        """The host link's one-way rate: what weights moved by an offload policy cross."""
        if self.pcie is None:
            return None
        generation, lanes = self.pcie.split(" x")
        return PCIE_GBS_PER_LANE[int(float(generation))] * int(lanes) * 1e9

    @property
    def fp8_compute(self) -> bool:
        return self.architecture in FP8_ARCHITECTURES

    @property
    def vram_bytes(self) -> int:
        return int(self.vram_gib * GIB)

    @property
    def tensor_flops(self) -> float:
        """PyTorch's fp16/bf16 GEMMs accumulate in FP32: that is the rate a diffusion model can reach."""
        return self.fp16_tflops_fp32_acc * 1e12


def _parse_catalog(text: str, origin: str) -> dict[str, GPU]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{origin}: not TOML: {error}") from None
    if set(data) - {"gpu"} or not isinstance(data.get("gpu"), dict):
        raise UsageError(f'{origin}: expected only [gpu."NAME"] tables')
    catalog = {}
    for name, entry in data["gpu"].items():
        if not isinstance(entry, dict):
            raise UsageError(f"{origin}: gpu {name!r} is not a table")
        unknown = set(entry) - set(REQUIRED) - {"source", *OPTIONAL}
        missing = [k for k in (*REQUIRED, "source") if k not in entry]
        if unknown or missing:
            problem = f"unknown fields {sorted(unknown)}" if unknown else f"missing {', '.join(missing)}"
            raise UsageError(f"{origin}: gpu {name!r}: {problem}; fields: {', '.join(REQUIRED)}, source")
        for key, bounds in REQUIRED.items():
            bounds.check(f"{origin}: gpu {name!r}: {key}", entry[key])
        if not isinstance(entry["source"], str) or not entry["source"].strip():
            raise UsageError(f"{origin}: gpu {name!r}: every figure needs a source (a non-empty string)")
        extra = _optional_fields(entry, origin, name)
        catalog[name] = GPU(name, *(float(entry[k]) for k in REQUIRED), entry["source"], **extra)
    return catalog


def _optional_fields(entry: dict, origin: str, name: str) -> dict:
    extra = {}
    if "architecture" in entry:
        if entry["architecture"] not in ARCHITECTURES:
            raise choices_error(f"{origin}: gpu {name!r}: architecture", entry["architecture"], list(ARCHITECTURES))
        extra["architecture"] = entry["architecture"]
    if "sms" in entry:
        SMS.check(f"{origin}: gpu {name!r}: sms (streaming multiprocessors)", entry["sms"])
        extra["sms"] = entry["sms"]
    if "pcie" in entry:
        found = re.fullmatch(r"([345])\.0 x(1|2|4|8|16)", str(entry["pcie"]))
        if not found:
            raise UsageError(f'{origin}: gpu {name!r}: pcie = {entry["pcie"]!r}; expected like "4.0 x16" (gen 3-5)')
        extra["pcie"] = entry["pcie"]
    return extra


def load_catalog(extra: str | Path | None = None) -> dict[str, GPU]:
    """The bundled catalog, plus the user's cards (which win on a name clash)."""
    catalog = _parse_catalog(resources.files("sdshape.data").joinpath("gpus.toml").read_text(), "bundled gpus.toml")
    if extra is not None:
        try:
            text = Path(extra).read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"--gpu-catalog {extra}: cannot read: {error}") from None
        catalog.update(_parse_catalog(text, f"--gpu-catalog {extra}"))
    return catalog


def pick(catalog: dict[str, GPU], names: list[str] | None) -> list[GPU]:
    if not names:
        return list(catalog.values())
    lowered = {name.lower(): gpu for name, gpu in catalog.items()}
    chosen = []
    for name in names:
        if name.lower() not in lowered:
            raise choices_error("GPU", name, list(catalog))
        chosen.append(lowered[name.lower()])
    return chosen


def match_measured(catalog: dict[str, GPU], gpu_name: str | None, memory_bytes: int | None) -> GPU | None:
    """The catalog entry for a GPU as NVML names it ('NVIDIA GeForce RTX 4090', 'NVIDIA H100 80GB HBM3')."""
    if not gpu_name:
        return None
    measured = gpu_name.lower().replace("-", " ")
    measured_size = re.search(r"(\d+)\s*gb", measured)
    candidates = []
    for gpu in catalog.values():
        tokens = gpu.name.lower().replace(" sxm", "").replace(" pcie", "").split(" ")
        sizes = [t for t in tokens if re.fullmatch(r"\d+gb", t)]
        base = [t for t in tokens if t not in sizes]
        if not all(re.search(rf"\b{re.escape(t)}\b", measured) for t in base):
            continue
        if sizes and measured_size and sizes[0] != f"{measured_size.group(1)}gb":
            continue  # "A100-SXM4-80GB" is not the 40GB card
        if any(re.search(rf"\b{suffix}\b", measured) and suffix not in base for suffix in ("ti", "super")):
            continue  # an RTX 4070 Ti is not an RTX 4070
        candidates.append((len(base), gpu))
    if "pcie" in measured:
        candidates = [c for c in candidates if "pcie" in c[1].name.lower()] or candidates
    else:
        candidates = [c for c in candidates if "pcie" not in c[1].name.lower()] or candidates
    # The most specific name first ("RTX 4060 Ti" over "RTX 4060"), then the closest memory size.
    candidates.sort(key=lambda c: (-c[0], abs(c[1].vram_bytes - memory_bytes) if memory_bytes else 0))
    candidates = [gpu for _, gpu in candidates]
    return candidates[0] if candidates else None
