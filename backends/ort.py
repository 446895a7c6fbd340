"""ONNX Runtime as its own Stable Diffusion tools run it, and the plain exported graph beside it.

- ``onnxruntime`` (the default): the fp32 export optimized by ORT's transformer
  optimizer, converted to fp16 for fp16 runs (``backends.ort_optimize``);
- ``onnxruntime:plain``: the graph torch.onnx's dynamo exporter gives at the
  run's precision, unoptimized, so the optimizer's effect is itself measured;
- ``onnxruntime:cuda-graph``: the optimized graph with the CUDA provider's
  ``enable_cuda_graph``, on IO-bound, preallocated, fixed buffers (GPU only);
- ``onnxruntime:cpu``, ``:cuda``, ``:tensorrt``: the execution provider
  (``--ort-provider``; default cuda on a GPU, cpu on the CPU).

On the GPU, inputs and outputs are bound to torch tensors' device memory (IO
binding) and ORT runs on torch's current stream, so CUDA-event timing covers
its work; the CUDA provider's arena grows by what is asked
(``arena_extend_strategy=kSameAsRequested``, as ORT's tools set it) instead of
by powers of two, and the settings are recorded, so arena growth is not
mistaken for model memory. ORT holds its own copy of the weights, so the
session releases the torch modules once every runner is prepared
(``keeps_module = False``). Install ``onnxruntime`` (CPU) or ``onnxruntime-gpu``
(CUDA, TensorRT providers): the extras ``onnx`` and ``gpu``.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import torch

from sdshape.backends import onnx_export, ort_optimize
from sdshape.backends.base import Artifact, BackendBase, Option, PreparedRunner, Runner
from sdshape.backends.cache import ArtifactSlot
from sdshape.backends.graphs import clone_outputs

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
_ORT_TYPES = {
    "tensor(float)": torch.float32,
    "tensor(float16)": torch.float16,
    "tensor(bfloat16)": torch.bfloat16,
    "tensor(int64)": torch.int64,
    "tensor(int32)": torch.int32,
}
_NUMPY = {torch.float32: np.float32, torch.float16: np.float16, torch.int64: np.int64, torch.int32: np.int32}
ARENA = {"arena_extend_strategy": "kSameAsRequested"}


def provider_for(option: str | None, device: torch.device) -> str:
    return option or ("cuda" if device.type == "cuda" else "cpu")


class OnnxRuntimeBackend(BackendBase):
    name = "onnxruntime"
    keeps_module = False  # ORT runs its own copy of the weights: the torch modules can go
    options = (
        Option(
            "ort_provider",
            "execution provider (default: cuda on a GPU, cpu on the CPU)",
            choices=tuple(PROVIDERS),
            default=None,
            flag="--ort-provider",
        ),
        Option(
            "optimize",
            "ORT's transformer optimizer and fp16 conversion, as its SD tools run them",
            default=True,
            kind=bool,
        ),
        Option(
            "cuda_graph",
            "the CUDA provider's enable_cuda_graph on fixed IO-bound buffers (GPU)",
            default=False,
            kind=bool,
        ),
    )
    variants: ClassVar[dict[str, dict[str, Any]]] = {
        **{provider: {"ort_provider": provider} for provider in PROVIDERS},
        "plain": {"optimize": False},
        "cuda-graph": {"cuda_graph": True},
    }

    @staticmethod
    def configure(options: dict[str, Any], device: str) -> dict[str, Any]:
        """The provider defaults to the device's; the cpu provider runs only with --device cpu; CUDA graphs
        need the CUDA provider."""
        from sdshape.core.errors import UsageError

        provider = options.get("ort_provider") or ("cuda" if device == "cuda" else "cpu")
        if (provider == "cpu") != (device == "cpu"):
            raise UsageError(
                f"onnxruntime provider {provider!r} does not match --device {device}: "
                "the cpu provider runs with --device cpu, cuda and tensorrt with --device cuda"
            )
        if options.get("cuda_graph") and provider != "cuda":
            raise UsageError(
                f"onnxruntime:cuda-graph needs the CUDA provider on --device cuda (got {provider!r}): "
                "CUDA graphs capture GPU kernels"
            )
        return {**options, "ort_provider": provider}

    def available(self) -> tuple[bool, str | None]:
        try:
            import onnxruntime
        except ImportError:
            return False, "onnxruntime is not installed (pip install 'sdshape[onnx]'; with CUDA: 'sdshape[gpu]')"
        ok, reason = onnx_export.exporter_available()
        if not ok:
            return False, reason
        providers = onnxruntime.get_available_providers()
        return True, None if providers else "no execution providers"

    def _graph(
        self,
        module: torch.nn.Module,
        inputs: tuple[torch.Tensor, ...],
        precision: str,
        device: torch.device,
        cache: Any,
    ) -> tuple[Any, Artifact]:
        if self.values["optimize"] and precision != "bf16":
            return ort_optimize.ensure_optimized(module, inputs, cache, precision, gpu=device.type == "cuda")
        path, artifact = onnx_export.ensure_onnx(module, inputs, cache)
        if self.values["optimize"]:  # bf16
            artifact.notes.append("bf16: ORT's Stable Diffusion optimizer converts to fp16 only; the plain graph runs")
        else:
            artifact.notes.append("plain: the dynamo exporter's graph at the run's precision, not optimized")
        return path, artifact

    def prepare(
        self,
        module: torch.nn.Module,
        example_inputs: tuple[torch.Tensor, ...],
        precision: str,
        device: torch.device,
        cache: ArtifactSlot,
    ) -> Runner:
        import onnxruntime as ort

        provider = provider_for(self.values.get("ort_provider"), device)
        budget = self.values.get("memory_budget_bytes")
        graphs = bool(self.values["cuda_graph"])
        if PROVIDERS[provider] not in ort.get_available_providers():
            raise RuntimeError(
                f"onnxruntime {ort.__version__} has no {PROVIDERS[provider]} "
                f"(available: {', '.join(ort.get_available_providers())}); install onnxruntime-gpu"
            )
        path, artifact = self._graph(module, example_inputs, precision, device, cache)
        try:
            session, settings = _session(ort, str(path), provider, device, budget, graphs)
        except Exception as error:
            if artifact.cache != "reused":
                raise
            # A cached file that passed its hash check but does not load: drop it, rebuild it once.
            import shutil
            from pathlib import Path

            shutil.rmtree(Path(path).parent, ignore_errors=True)
            path, artifact = self._graph(module, example_inputs, precision, device, cache)
            artifact.notes.append(f"cached model failed to load ({str(error).splitlines()[0][:200]}): rebuilt")
            session, settings = _session(ort, str(path), provider, device, budget, graphs)
        artifact.notes += [f"provider {PROVIDERS[provider]}", settings]
        artifact.weight_files = ort_optimize.weight_files(path)
        artifact.weight_bytes = sum(os.path.getsize(file) for file in artifact.weight_files)
        names = onnx_export.input_names(module, len(example_inputs))
        returns_tuple = module.returns_tuple
        if graphs:
            run = _graphed_runner(session, device, names, example_inputs, returns_tuple)
            artifact.notes.append("CUDA graph: inputs copied into fixed bound buffers, outputs cloned per call")
        elif device.type == "cuda":
            run = _bound_runner(session, device, names, returns_tuple)
        else:
            run = _host_runner(session, names, returns_tuple)
        return PreparedRunner(run, artifact)


def _session(
    ort: Any, path: str, provider: str, device: torch.device, gpu_mem_limit: int | None, cuda_graph: bool
) -> tuple[Any, str]:
    """The inference session, and its memory settings as the artifact records them."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if device.type == "cpu":
        options.intra_op_num_threads = torch.get_num_threads()  # the same threads eager gets
        # Idle ORT threads otherwise spin after each call and steal the cores the Python loop
        # and torch need between calls: the pipeline then ran 46% slower than its stages summed.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(path, options, providers=[PROVIDERS["cpu"]])
        return session, "CPU provider: ORT's default CPU arena"
    stream = str(torch.cuda.current_stream(device).cuda_stream)
    gpu = {"device_id": device.index or 0, "user_compute_stream": stream, "has_user_compute_stream": "1", **ARENA}
    if gpu_mem_limit:
        gpu["gpu_mem_limit"] = str(gpu_mem_limit)  # --vram-cap: ORT's arena gets the budget too
    if cuda_graph:
        gpu["enable_cuda_graph"] = "1"
    providers: list[Any] = [(PROVIDERS[provider], gpu)]
    if provider == "tensorrt":
        providers.append((PROVIDERS["cuda"], {k: v for k, v in gpu.items() if k != "enable_cuda_graph"}))
    settings = "CUDA arena: " + ", ".join(
        f"{k}={gpu[k]}" for k in ("arena_extend_strategy", "gpu_mem_limit") if k in gpu
    )
    return ort.InferenceSession(path, options, providers=providers), settings


def _pack(outputs: list[torch.Tensor], returns_tuple: bool) -> Any:
    return tuple(outputs) if returns_tuple else outputs[0]


def _feeds(session: Any, names: list[str]) -> list[tuple[str, int, torch.dtype]]:
    """(name, position in the call, dtype the graph wants) of each graph input: an export may drop an input
    it does not use, and an fp16 graph wants every float input in fp16."""
    return [(i.name, names.index(i.name), _ORT_TYPES[i.type]) for i in session.get_inputs()]


def _host_runner(session: Any, names: list[str], returns_tuple: bool) -> Runner:
    feeds = _feeds(session, names)

    def run(*inputs: torch.Tensor) -> Any:
        given = {name: inputs[at].detach().cpu().to(dtype).numpy() for name, at, dtype in feeds}
        return _pack([torch.from_numpy(o) for o in session.run(None, given)], returns_tuple)

    return run


def _element(dtype: torch.dtype) -> Any:
    if dtype not in _NUMPY:
        raise RuntimeError(f"onnxruntime IO binding has no NumPy element type for {dtype}")
    return _NUMPY[dtype]


def _outputs_meta(session: Any) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    meta = [(o.name, tuple(o.shape), _ORT_TYPES[o.type]) for o in session.get_outputs()]
    if any(not isinstance(d, int) for _, shape, _ in meta for d in shape):
        raise RuntimeError("the exported graph has dynamic output shapes; IO binding needs static ones")
    return meta


def _bound_runner(session: Any, device: torch.device, names: list[str], returns_tuple: bool) -> Runner:
    """IO binding on torch tensors: inputs read and outputs written in place on the GPU."""
    feeds, outputs_meta = _feeds(session, names), _outputs_meta(session)
    index = device.index or 0
    binding = session.io_binding()

    def run(*inputs: torch.Tensor) -> Any:
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        held = [inputs[at].to(dtype).contiguous() for _, at, dtype in feeds]
        for (name, _, dtype), t in zip(feeds, held, strict=True):
            binding.bind_input(name, "cuda", index, _element(dtype), tuple(t.shape), t.data_ptr())
        outputs = [torch.empty(shape, dtype=dtype, device=device) for _, shape, dtype in outputs_meta]
        for (name, shape, dtype), out in zip(outputs_meta, outputs, strict=True):
            binding.bind_output(name, "cuda", index, _element(dtype), shape, out.data_ptr())
        session.run_with_iobinding(binding)
        return _pack(outputs, returns_tuple)

    return run


def _graphed_runner(
    session: Any, device: torch.device, names: list[str], example: tuple[torch.Tensor, ...], returns_tuple: bool
) -> Runner:
    """CUDA graphs need fixed addresses: inputs and outputs are bound once to preallocated buffers; each call
    copies its inputs in, runs (the first run captures the graph, the rest replay it) and clones the outputs."""
    feeds, outputs_meta = _feeds(session, names), _outputs_meta(session)
    index = device.index or 0
    static = [example[at].detach().to(device=device, dtype=dtype).clone() for _, at, dtype in feeds]
    outputs = [torch.empty(shape, dtype=dtype, device=device) for _, shape, dtype in outputs_meta]
    binding = session.io_binding()
    for (name, _, dtype), t in zip(feeds, static, strict=True):
        binding.bind_input(name, "cuda", index, _element(dtype), tuple(t.shape), t.data_ptr())
    for (name, shape, dtype), out in zip(outputs_meta, outputs, strict=True):
        binding.bind_output(name, "cuda", index, _element(dtype), shape, out.data_ptr())

    def run(*inputs: torch.Tensor) -> Any:
        for (_, at, _), buffer in zip(feeds, static, strict=True):
            buffer.copy_(inputs[at])
        session.run_with_iobinding(binding)
        return clone_outputs(_pack(outputs, returns_tuple))

    return run
