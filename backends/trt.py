"""TensorRT: an engine built from the fp32 ONNX export, run with ``execute_async_v3``.

Written against the TensorRT 10 Python API (named I/O tensors): ``OnnxParser.
parse_from_file`` (it reads the external weights file), builder flags per
precision, an optimization profile for any dynamic input, a persistent timing
cache, and ``set_tensor_address`` on torch tensors' device memory with the
current torch stream. Engines are cached like ONNX files, keyed by the ONNX
entry, TensorRT's version, the flags, the GPU and the driver.

TensorRT's runtime is not installable on every machine (its wheels come from
NVIDIA's index); ``available()`` says so and choosing the backend is then a
usage error. The pieces that need no TensorRT (flags, profiles, cache parts)
are plain functions, tested on any machine.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import torch

from sdshape.backends import onnx_export
from sdshape.backends.base import Artifact, BackendBase, PreparedRunner, Runner
from sdshape.backends.cache import ArtifactSlot
from sdshape.core.vocabulary import PRECISIONS

ENGINE_FILE = "model.engine"
TIMING_CACHE = "timing.cache"
WORKSPACE_BYTES = 8 << 30
INSTALL_HINT = (
    "tensorrt is not installed: its wheels come from NVIDIA's index "
    "(pip install tensorrt-cu12 --extra-index-url https://pypi.nvidia.com) and it needs a CUDA GPU"
)


def builder_flags(precision: str) -> list[str]:
    """TensorRT BuilderFlag names to set: fp32 none, fp16 FP16, bf16 BF16."""
    flag = PRECISIONS[precision].tensorrt_flag
    return [flag] if flag else []


def profile_shapes(
    network_inputs: dict[str, tuple[int, ...]],
    call_inputs: dict[str, tuple[int, ...]],
    rows_per_image: int,
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """(min, opt, max) for every input with a dynamic (-1) dimension.

    The batch axis ranges from one image's rows (2 under classifier-free
    guidance, 1 for the VAE) up to the run's rows, which is also the optimum;
    any other dynamic axis is pinned to the run's size. Static inputs need no
    profile and get none.
    """
    profile = {}
    for name, dims in network_inputs.items():
        if all(d >= 0 for d in dims):
            continue
        call = call_inputs[name]
        if len(call) != len(dims):
            raise ValueError(f"{name}: network rank {len(dims)} but call shape {call}")
        low = tuple(
            min(rows_per_image, c) if axis == 0 and d < 0 else c
            for axis, (d, c) in enumerate(zip(dims, call, strict=True))
        )
        profile[name] = (low, tuple(call), tuple(call))
    return profile


def engine_parts(onnx_key: str, precision: str, trt_version: str) -> dict[str, Any]:
    """What besides the session identity makes an engine valid: its ONNX source, flags, TensorRT."""
    return {"onnx_entry": onnx_key, "flags": builder_flags(precision), "tensorrt": trt_version}


class TensorRTBackend(BackendBase):
    name = "tensorrt"
    keeps_module = False  # the engine holds its own weights: the torch modules can go

    def available(self) -> tuple[bool, str | None]:
        if importlib.util.find_spec("tensorrt") is None:
            return False, INSTALL_HINT
        if not torch.cuda.is_available():
            return False, "TensorRT needs a CUDA GPU and none is usable"
        return onnx_export.exporter_available()

    def prepare(
        self,
        module: torch.nn.Module,
        example_inputs: tuple[torch.Tensor, ...],
        precision: str,
        device: torch.device,
        cache: ArtifactSlot,
    ) -> Runner:
        import tensorrt as trt

        if device.type != "cuda":
            raise RuntimeError("TensorRT runs on a CUDA GPU only")
        # TensorRT builds from the fp32 export and lowers precision itself (the FP16/BF16 builder flags).
        onnx_path, onnx_artifact = onnx_export.ensure_fp32_onnx(module, example_inputs, cache)
        onnx_key = onnx_export.fp32_entry(cache).directory.name
        parts = engine_parts(onnx_key, precision, trt.__version__)
        found = cache.lookup("tensorrt", parts)
        entry = found or cache.entry("tensorrt", parts)
        logger = trt.Logger(trt.Logger.WARNING)
        engine = None
        notes = [f"onnx {onnx_artifact.cache} ({onnx_artifact.build_s:.1f} s)"]
        if found is not None:
            engine = trt.Runtime(logger).deserialize_cuda_engine(entry.path(ENGINE_FILE).read_bytes())
            artifact = Artifact("reused", 0.0, str(entry.directory), notes, cached_build_s=entry.recorded_build_s())
            if engine is None:
                notes.append("cached engine did not deserialize: rebuilt")
        if engine is None:
            entry = cache.entry("tensorrt", parts)
            entry.reset()
            rows = example_inputs[0].shape[0] if example_inputs and example_inputs[0].dim() else 1
            start = time.perf_counter()
            serialized = _build_engine(trt, logger, onnx_path, precision, example_inputs, rows, entry, cache)
            build_s = time.perf_counter() - start
            entry.path(ENGINE_FILE).write_bytes(bytes(serialized))
            entry.commit(build_s)
            engine = trt.Runtime(logger).deserialize_cuda_engine(bytes(serialized))
            artifact = Artifact(
                "built", build_s + onnx_artifact.build_s * (onnx_artifact.cache == "built"), str(entry.directory), notes
            )
        names = onnx_export.input_names(module, len(example_inputs))
        run = _engine_runner(trt, engine, names, device, module.returns_tuple)
        return PreparedRunner(run, artifact)


def _build_engine(
    trt: Any,
    logger: Any,
    onnx_path: Any,
    precision: str,
    example_inputs: tuple[torch.Tensor, ...],
    rows: int,
    entry: Any,
    cache: ArtifactSlot,
) -> Any:
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse the ONNX file: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    for flag in builder_flags(precision):
        config.set_flag(getattr(trt.BuilderFlag, flag))
    network_inputs = {network.get_input(i).name: tuple(network.get_input(i).shape) for i in range(network.num_inputs)}
    call_inputs = {name: tuple(t.shape) for name, t in zip(network_inputs, example_inputs, strict=False)}
    shapes = profile_shapes(network_inputs, call_inputs, rows_per_image=min(rows, 2))
    if shapes:
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in shapes.items():
            profile.set_shape(name, min=low, opt=opt, max=high)
        config.add_optimization_profile(profile)
    timing_path = (cache.fallback or cache.root) / "tensorrt" / TIMING_CACHE
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT returned no engine (see its log above; a larger workspace may help)")
    timing_path.parent.mkdir(parents=True, exist_ok=True)
    timing_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    return serialized


def _engine_runner(trt: Any, engine: Any, input_order: list[str], device: torch.device, returns_tuple: bool) -> Runner:
    dtypes = {
        trt.DataType.FLOAT: torch.float32,
        trt.DataType.HALF: torch.float16,
        trt.DataType.BF16: torch.bfloat16,
        trt.DataType.INT32: torch.int32,
        trt.DataType.INT64: torch.int64,
    }
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    outputs = [n for n in names if engine.get_tensor_mode(n) != trt.TensorIOMode.INPUT]
    # The engine's inputs by their position in the call, in the dtype it was built for (the fp32 export's
    # inputs, whatever precision runs inside); an input the export dropped is not bound.
    feeds = [
        (name, input_order.index(name), dtypes[engine.get_tensor_dtype(name)])
        for name in names
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
    ]

    def run(*inputs: torch.Tensor) -> Any:
        held = [inputs[at].to(dtype).contiguous() for _, at, dtype in feeds]
        for (name, _, _), t in zip(feeds, held, strict=True):
            context.set_input_shape(name, tuple(t.shape))
            context.set_tensor_address(name, t.data_ptr())
        results = []
        for name in outputs:
            out = torch.empty(
                tuple(context.get_tensor_shape(name)), dtype=dtypes[engine.get_tensor_dtype(name)], device=device
            )
            context.set_tensor_address(name, out.data_ptr())
            results.append(out)
        if not context.execute_async_v3(stream_handle=torch.cuda.current_stream(device).cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        return tuple(results) if returns_tuple else results[0]

    return run
