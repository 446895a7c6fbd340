"""ONNX Runtime: the stage module exported to ONNX, run by an execution provider.

Providers: ``--ort-provider cuda|tensorrt|cpu`` (default: cuda on a GPU, cpu on
the CPU). On the GPU, inputs and outputs are bound to torch tensors' device
memory (IO binding), so no step goes through host memory, and the provider runs
on torch's current stream, so CUDA-event timing covers its work. On the CPU,
tensors are handed over as NumPy views. Install ``onnxruntime`` (CPU) or
``onnxruntime-gpu`` (CUDA, TensorRT providers): the extras ``onnx`` and ``gpu``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from sdshape.backends import onnx_export
from sdshape.backends.base import Option, PreparedRunner, Runner
from sdshape.backends.cache import ArtifactSlot

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
_ORT_TYPES = {
    "tensor(float)": torch.float32,
    "tensor(float16)": torch.float16,
    "tensor(bfloat16)": torch.bfloat16,
    "tensor(int64)": torch.int64,
    "tensor(int32)": torch.int32,
}
_NUMPY = {torch.float32: np.float32, torch.float16: np.float16, torch.int64: np.int64, torch.int32: np.int32}


def provider_for(option: str | None, device: torch.device) -> str:
    return option or ("cuda" if device.type == "cuda" else "cpu")


class OnnxRuntimeBackend:
    name = "onnxruntime"
    options = (
        Option(
            "ort_provider",
            "execution provider (default: cuda on a GPU, cpu on the CPU)",
            choices=tuple(PROVIDERS),
            default=None,
            flag="--ort-provider",
        ),
    )
    variants: ClassVar[dict[str, dict[str, Any]]] = {provider: {"ort_provider": provider} for provider in PROVIDERS}

    @staticmethod
    def configure(options: dict[str, Any], device: str) -> dict[str, Any]:
        """The provider defaults to the device's; the cpu provider runs only with --device cpu."""
        provider = options.get("ort_provider") or ("cuda" if device == "cuda" else "cpu")
        if (provider == "cpu") != (device == "cpu"):
            from sdshape.errors import UsageError

            raise UsageError(
                f"onnxruntime provider {provider!r} does not match --device {device}: "
                "the cpu provider runs with --device cpu, cuda and tensorrt with --device cuda"
            )
        return {**options, "ort_provider": provider}

    def __init__(self, options: dict[str, Any] | None = None):
        self.options = dict(options or {})

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

    def prepare(
        self,
        module: torch.nn.Module,
        example_inputs: tuple[torch.Tensor, ...],
        precision: str,
        device: torch.device,
        cache: ArtifactSlot,
    ) -> Runner:
        import onnxruntime as ort

        provider = provider_for(self.options.get("ort_provider"), device)
        budget = self.options.get("memory_budget_bytes")
        if PROVIDERS[provider] not in ort.get_available_providers():
            raise RuntimeError(
                f"onnxruntime {ort.__version__} has no {PROVIDERS[provider]} "
                f"(available: {', '.join(ort.get_available_providers())}); install onnxruntime-gpu"
            )
        path, artifact = onnx_export.ensure_onnx(module, example_inputs, cache)
        try:
            session = _session(ort, str(path), provider, device, budget)
        except Exception as error:
            if artifact.cache != "reused":
                raise
            # A cached file that passed its fingerprint check but does not load: rebuild it once.
            onnx_export.invalidate(cache)
            path, artifact = onnx_export.ensure_onnx(module, example_inputs, cache)
            artifact.notes.append(f"cached model failed to load ({str(error).splitlines()[0][:200]}): rebuilt")
            session = _session(ort, str(path), provider, device, budget)
        artifact.notes.append(f"provider {PROVIDERS[provider]}")
        returns_tuple = bool(getattr(module, "returns_tuple", False))
        if device.type == "cuda":
            run = _bound_runner(session, device, returns_tuple)
        else:
            run = _host_runner(session, returns_tuple)
        return PreparedRunner(run, artifact)


def _session(ort: Any, path: str, provider: str, device: torch.device, gpu_mem_limit: int | None = None) -> Any:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if device.type == "cpu":
        options.intra_op_num_threads = torch.get_num_threads()  # the same threads eager gets
        # Idle ORT threads otherwise spin after each call and steal the cores the Python loop
        # and torch need between calls: the pipeline then ran 46% slower than its stages summed.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(path, options, providers=[PROVIDERS["cpu"]])
    stream = str(torch.cuda.current_stream(device).cuda_stream)
    gpu = {"device_id": device.index or 0, "user_compute_stream": stream, "has_user_compute_stream": "1"}
    if gpu_mem_limit:
        gpu["gpu_mem_limit"] = str(gpu_mem_limit)  # --vram-cap: ORT's arena gets the same budget as torch
    providers: list[Any] = [(PROVIDERS[provider], gpu)]
    if provider == "tensorrt":
        providers.append((PROVIDERS["cuda"], gpu))  # for nodes TensorRT does not take
    return ort.InferenceSession(path, options, providers=providers)


def _pack(outputs: list[torch.Tensor], returns_tuple: bool) -> Any:
    return tuple(outputs) if returns_tuple else outputs[0]


def _host_runner(session: Any, returns_tuple: bool) -> Runner:
    names = [i.name for i in session.get_inputs()]

    def run(*inputs: torch.Tensor) -> Any:
        feeds = {name: t.detach().cpu().numpy() for name, t in zip(names, inputs, strict=False)}
        return _pack([torch.from_numpy(o) for o in session.run(None, feeds)], returns_tuple)

    return run


def _bound_runner(session: Any, device: torch.device, returns_tuple: bool) -> Runner:
    """IO binding on torch tensors: inputs read and outputs written in place on the GPU."""
    names = [i.name for i in session.get_inputs()]
    outputs_meta = [(o.name, tuple(o.shape), _ORT_TYPES[o.type]) for o in session.get_outputs()]
    if any(not isinstance(d, int) for _, shape, _ in outputs_meta for d in shape):
        raise RuntimeError("the exported graph has dynamic output shapes; IO binding needs static ones")
    index = device.index or 0
    binding = session.io_binding()

    def element(dtype: torch.dtype) -> Any:
        if dtype not in _NUMPY:
            raise RuntimeError(f"onnxruntime IO binding has no NumPy element type for {dtype}")
        return _NUMPY[dtype]

    def run(*inputs: torch.Tensor) -> Any:
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        held = [t.contiguous() for t in inputs]
        for name, t in zip(names, held, strict=False):
            binding.bind_input(name, "cuda", index, element(t.dtype), tuple(t.shape), t.data_ptr())
        outputs = [torch.empty(shape, dtype=dtype, device=device) for _, shape, dtype in outputs_meta]
        for (name, shape, dtype), out in zip(outputs_meta, outputs, strict=True):
            binding.bind_output(name, "cuda", index, element(dtype), shape, out.data_ptr())
        session.run_with_iobinding(binding)
        return _pack(outputs, returns_tuple)

    return run
