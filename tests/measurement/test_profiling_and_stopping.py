"""Measuring the GPU, not the host: kernel classes, busy time, rounds until stable, CUDA-graph replay,
ties in the explorer and projections that scale only the GPU's time. All on the CPU."""

from __future__ import annotations

import json
import random

import pytest
import torch

from sdshape.cli import main
from sdshape.core import statistics
from sdshape.measurement import profiling, stopping

# Kernel names as torch.profiler reports them on an A100/H100 (flash and memory-efficient attention,
# cuDNN and CUTLASS convolutions, cuBLAS/CUTLASS/nvjet GEMMs, ATen elementwise, group norm, copies).
REAL_KERNELS = {
    "void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 128, 4, false, false, cutlass::half_t, "
    "Flash_kernel_traits<64, 128, 128, 4, cutlass::half_t> >, false, false, false, false, false, true, false, "
    "false>(pytorch_flash::Flash_fwd_params)": "attention",
    "fmha_cutlassF_f16_aligned_64x64_rf_sm80(PyTorchMemEffAttention::AttentionKernel<cutlass::half_t, "
    "cutlass::arch::Sm80, true, 64, 64, 64, true, true>::Params)": "attention",
    "void at::native::(anonymous namespace)::cunn_SoftMaxForward<4, float, float, float, "
    "at::native::(anonymous namespace)::SoftMaxForwardEpilogue>(float*, float const*, int)": "attention",
    "sm80_xmma_fprop_implicit_gemm_f16f16_f16f32_f32_nhwckrsc_nhwc_tilesize128x128x64_warpgroupsize1x1x1_"
    "execute_segment_k_off_kernel__5x_cudnn": "convolution",
    "void implicit_convolve_sgemm<float, float, 128, 6, 7, 3, 3, 5, 1, false, false, true>(int, int, int, "
    "float const*, int, float*, float const*, kernel_conv_params, unsigned long long, int, float, float, int, "
    "float const*, float const*, bool, int, int)": "convolution",
    "void cudnn::cnn::conv2d_grouped_direct_kernel<false, true, false, false, 0, 0, int, __half, __half, "
    "__half, float, float, true>(cudnn::cnn::GroupedDirectFpropParams, __half const*)": "convolution",
    "void cutlass::Kernel2<cutlass_80_tensorop_f16_s16816gemm_relu_f16_256x128_32x3_nn_align8>"
    "(cutlass_80_tensorop_f16_s16816gemm_relu_f16_256x128_32x3_nn_align8::Params)": "gemm",
    "ampere_fp16_s16816gemm_fp16_128x128_ldg8_f2f_stages_32x5_tn": "gemm",
    "nvjet_hsh_256x128_64x4_1x2_h_bz_coopB_NNT": "gemm",
    "void at::native::(anonymous namespace)::RowwiseMomentsCUDAKernel<c10::Half, float>(long, float, "
    "c10::Half const*, float*, float*)": "normalization",
    "void at::native::(anonymous namespace)::group_norm_1d_forward<c10::Half>(...)": "normalization",
    "triton_red_fused_native_group_norm_0": "normalization",
    "void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<c10::Half>, "
    "at::detail::Array<char*, 3> >(int, at::native::CUDAFunctor_add<c10::Half>, at::detail::Array<char*, 3>)": (
        "elementwise"
    ),
    "void at::native::elementwise_kernel<128, 2, at::native::gpu_kernel_impl_nocast<at::native::silu_kernel("
    "at::TensorIteratorBase&)::{lambda()#1}::operator()() const::{lambda(c10::Half)#1}> >(int, ...)": "elementwise",
    "triton_poi_fused_add_silu_3": "elementwise",
    "Memcpy HtoD (Pageable -> Device)": "memory",
    "Memset (Device)": "memory",
    "void at::native::(anonymous namespace)::CatArrayBatchedCopy<at::native::(anonymous namespace)::OpaqueType<2u>, "
    "unsigned int, 4, 64, 64>(...)": "memory",
    "void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::MeanOps<float, float> > >(...)": (
        "other"
    ),
}


@pytest.mark.parametrize(
    "name,expected", REAL_KERNELS.items(), ids=[v + str(i) for i, v in enumerate(REAL_KERNELS.values())]
)
def test_kernel_classifier_on_names_from_real_traces(name, expected):
    assert profiling.classify(name) == expected


def test_cpu_ops_use_the_same_classes():
    ops = {
        "aten::conv2d": "convolution",
        "aten::linear": "gemm",
        "aten::addmm": "gemm",
        "aten::group_norm": "normalization",
        "aten::scaled_dot_product_attention": "attention",
        "aten::silu": "elementwise",
        "aten::cat": "memory",
    }
    assert {op: profiling.classify(op) for op in ops} == ops


def test_busy_fraction_is_the_union_of_kernel_intervals_over_the_round():
    kernels = [("gemm_a", 0.000, 0.004), ("gemm_b", 0.002, 0.006), ("Memcpy HtoD", 0.008, 0.009)]
    assert profiling.busy_union_s([(a, b) for _, a, b in kernels]) == pytest.approx(0.007)  # overlap counted once
    summary = profiling.summarize_kernels(kernels, timed_median_s=0.010, profiled_wall_s=0.020)
    assert summary["busy_fraction"] == pytest.approx(0.7) and summary["host_bound"]  # under 80%: host-bound
    assert summary["by_class"]["gemm"] == pytest.approx(0.008) and summary["by_class"]["memory"] == pytest.approx(0.001)
    assert summary["top"][0] == {"name": "gemm_a", "class": "gemm", "total_s": pytest.approx(0.004), "calls": 1}
    graphs = profiling.summarize_kernels(kernels, timed_median_s=0.0075, profiled_wall_s=0.02)
    assert graphs["busy_fraction"] == pytest.approx(0.7 / 0.75) and not graphs["host_bound"]


# -- rounds until stable ------------------------------------------------------------------------


def test_the_median_interval_uses_order_statistics():
    assert statistics.median_ci([1, 2, 3, 4, 5]) is None  # five rounds cannot bracket the median at 95%
    assert statistics.median_ci(list(range(1, 11))) == (2, 9)  # the textbook ranks for n = 10
    assert statistics.median_ci(list(range(1, 7))) == (1, 6)


def test_the_stopping_rule():
    rule = stopping.Stopping(target_ci=0.01, max_rounds=50, max_time_s=10.0)
    steady = [1.0 + 0.001 * (i % 3) for i in range(6)]
    assert rule.done(steady[:4], 0.1) is None  # fewer than five rounds
    assert rule.done(steady, 0.1) == "ci"
    noisy = [random.Random(i).uniform(0.5, 1.5) for i in range(50)]
    assert rule.done(noisy[:20], 0.1) is None and rule.done(noisy, 0.1) == "max_rounds"
    assert rule.done(noisy[:7], 11.0) == "max_time"
    assert stopping.Stopping(fixed=3).done([1, 1, 1], 0.0) == "fixed"
    assert rule.record("ci", steady).rel_ci == pytest.approx(statistics.relative_ci(steady))


class ScriptedClock:
    """The measurement module's clock, scripted: every reading advances it by ``tick_s``, so each round
    lasts the same and the stopping rule's verdict does not depend on how busy the machine is."""

    def __init__(self, tick_s: float):
        import time

        self._time, self.tick_s, self.now_s = time, tick_s, 0.0

    def perf_counter(self) -> float:
        self.now_s += self.tick_s
        return self.now_s

    def perf_counter_ns(self) -> int:
        return int(self.perf_counter() * 1e9)

    def __getattr__(self, name: str):
        return getattr(self._time, name)


@pytest.mark.parametrize(
    ("tick_s", "criterion", "rounds"),
    [
        (0.001, "ci", 6),  # equal rounds: the CI is zero once the order statistics bracket the median (n = 6)
        (0.4, "max_time", 1),  # each round reads the clock twice and the rule once: 1.2 s after one round
        (0.0001, "max_rounds", 7),  # max_rounds 7 below what the CI would need with a noisy stage
    ],
)
def test_rounds_auto_stops_by_its_criterion_and_says_which(tick_s, criterion, rounds, monkeypatch):
    """The recorder under a scripted clock: which criterion ends the rounds, and the record it leaves."""
    from sdshape.measurement import measure
    from sdshape.measurement.sampling import BackgroundSampler

    clock = ScriptedClock(tick_s)
    monkeypatch.setattr(measure, "time", clock)

    class Stage:
        name = "denoise_loop"
        calls = 0

        def run(self, mark=None):
            Stage.calls += 1
            if criterion == "max_rounds":  # every other round twice as long: the CI never closes in
                clock.now_s += tick_s * (Stage.calls % 2)

    class Quiet:
        def read(self):
            return {"host_rss_bytes": 1}

        def energy_mj(self):
            return None

    sampler = BackgroundSampler(Quiet(), interval_s=0.0)
    sampler.start()
    rule = stopping.Stopping(target_ci=0.02, max_rounds=7 if criterion == "max_rounds" else 50, max_time_s=1.0)
    outcome = measure.StageRecorder(Stage(), torch.device("cpu"), sampler, warmup=1).run_all(rule)
    sampler.stop()
    assert outcome.stopping.criterion == criterion, outcome.stopping
    assert outcome.stopping.rounds == len(outcome.rounds_s) == rounds
    if criterion == "ci":
        assert outcome.stopping.rel_ci <= 0.02


def test_rounds_auto_in_a_run_records_how_its_rounds_stopped(tmp_path, monkeypatch):
    """The wiring, once: a run with --rounds auto writes each stage's stopping record beside its rounds."""
    from sdshape.measurement import measure

    monkeypatch.setattr(measure, "time", ScriptedClock(0.4))
    out = tmp_path / "auto.json"
    argv = ["run", "--shape", "tiny", "--device", "cpu", "--steps", "1", "--rounds", "auto", "--max-time", "1"]
    assert main([*argv, "--warmup", "0", "--no-parity", "--json", str(out)]) == 0
    for bench in json.loads(out.read_text())["benchmarks"]:
        record = bench["extra_info"]["stopping"]
        assert record["criterion"] == "max_time" and record["rounds"] == len(bench["stats"]["data"]) == 1


BAD_STOPPING = [
    (["--rounds", "many"], "whole number or auto"),
    (["--target-ci", "5"], "--target-ci"),
    (["--max-rounds", "2"], "at least 5"),
]


@pytest.mark.parametrize("argv,expected", BAD_STOPPING)
def test_bad_stopping_flags(argv, expected, capsys):
    assert main(["run", "--shape", "tiny", "--device", "cpu", *argv]) == 2
    assert expected in capsys.readouterr().err


# -- profiling on the CPU -----------------------------------------------------------------------


@pytest.mark.slow
def test_profile_on_the_cpu_splits_ops_by_class_and_says_why_busy_is_null(tmp_path, capsys):
    out = tmp_path / "profiled.json"
    argv = ["run", "--shape", "tiny", "--device", "cpu", "--steps", "1", "--rounds", "2", "--warmup", "0"]
    assert main([*argv, "--profile", "--json", str(out)]) == 0
    assert "where in each stage the time goes" in capsys.readouterr().out
    rows = {b["extra_info"]["stage"]: b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]}
    kernels = rows["vae_decode"]["kernels"]
    assert kernels["busy_fraction"] is None and "no device" in kernels["busy_note"]
    assert kernels["by_class"]["convolution"] > 0 and kernels["kernel_s"] == pytest.approx(
        sum(kernels["by_class"].values())
    )
    assert rows["vae_decode"]["host_bound"] is None
    assert main(["report", str(out), "--out", str(tmp_path / "report"), "--gpus", "RTX 4090"]) == 0
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "## Where in each stage the time goes" in markdown and "![kernel classes" in markdown
    assert (tmp_path / "report" / "kernel-classes.png").stat().st_size > 10_000


def test_cpu_ops_are_ranked_by_class_from_a_scripted_profile():
    """The ranking logic on a scripted profile (a VAE decoder's ops): real CPU times depend on the load."""
    from sdshape.measurement.profiling import summarize_cpu_ops

    ops = [("aten::conv2d", 0.030), ("aten::group_norm", 0.012), ("aten::conv2d", 0.020), ("aten::silu", 0.004)]
    ops += [("aten::upsample_nearest2d", 0.003), ("aten::scaled_dot_product_attention", 0.002)]
    summary = summarize_cpu_ops(ops, timed_median_s=0.08)
    by_class = summary["by_class"]
    assert max(by_class, key=by_class.get) == "convolution" and by_class["convolution"] == pytest.approx(0.05)
    assert by_class["normalization"] == pytest.approx(0.012) and by_class["attention"] == pytest.approx(0.002)
    assert summary["top"][0]["name"] == "aten::conv2d" and summary["busy_fraction"] is None


# -- CUDA-graph replay --------------------------------------------------------------------------


def test_eager_cudagraph_on_the_cpu_is_a_usage_error(capsys):
    assert main(["run", "--shape", "tiny", "--device", "cpu", "--backend", "eager:cudagraph"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "eager:cudagraph needs --device cuda" in err


class FakeCuda:
    """Just enough of torch.cuda's graph API to run GraphRunner's logic on the CPU: a 'graph' records the
    captured call and replays it on the static buffers, as a real one replays its kernels."""

    class Stream:
        def __init__(self, device=None):
            pass

        def wait_stream(self, other):
            pass

    class CUDAGraph:
        def replay(self):
            self.replayed += 1
            self.output.copy_(self.call(*self.inputs))

    def __init__(self):
        self.captured = None

    def current_stream(self, device=None):
        return FakeCuda.Stream()

    def stream(self, stream):
        import contextlib

        return contextlib.nullcontext()

    def synchronize(self, device=None):
        pass

    def graph(self, graph):
        import contextlib

        fake = self

        @contextlib.contextmanager
        def capture():
            fake.captured = graph
            yield

        return capture()


def test_graph_runner_copies_inputs_into_static_buffers_and_clones_outputs():
    from sdshape.backends.graphs import WARMUP_CALLS, GraphRunner

    calls = []

    def double(x):
        calls.append(x.data_ptr())
        return x * 2

    cuda = FakeCuda()
    runner = GraphRunner(double, (torch.ones(3),), torch.device("cpu"), cuda=cuda)
    graph = cuda.captured
    graph.call, graph.inputs, graph.output, graph.replayed = double, runner.static, runner.output, 0
    assert len(calls) == WARMUP_CALLS + 1 and len(set(calls)) == 1  # warm-up and capture on the static buffer
    with torch.inference_mode():  # as the session calls every runner
        first = runner(torch.full((3,), 5.0))
        second = runner(torch.full((3,), 7.0))
    assert graph.replayed == 2
    assert first.tolist() == [10.0, 10.0, 10.0]  # a clone: the second replay did not overwrite it
    assert second.tolist() == [14.0, 14.0, 14.0] and runner.capture_s >= 0


# -- the explorer: ties and the composition check -----------------------------------------------


def _composition(name: str, seconds: float, half: float):
    from sdshape.models.zoo import get_shape
    from sdshape.shapes.compositions import Composition

    return Composition(
        get_shape("tiny"), {}, {}, {"status": "ok", "seconds_per_image": seconds, "ci_s": half, "name": name}
    )


def test_compositions_inside_each_others_ci_are_tied_not_ranked():
    from sdshape.shapes.composed_costs import rank_with_ties

    a, b, c = _composition("a", 1.00, 0.02), _composition("b", 1.01, 0.02), _composition("c", 1.20, 0.02)
    rank_with_ties([c, b, a])
    assert (a.measured["rank"], b.measured["rank"], c.measured["rank"]) == (1, 1, 3)
    assert a.measured["tied"] and b.measured["tied"] and not c.measured["tied"]
    unknown = [_composition("x", 1.0, None), _composition("y", 1.01, None)]
    rank_with_ties(unknown)
    assert [u.measured["rank"] for u in unknown] == [1, 2]  # without intervals nothing can be called a tie


def test_the_composition_check_names_the_component_that_is_off():
    from sdshape.result.document import stats_dict
    from sdshape.result.model import ResultId, StageResult
    from sdshape.shapes.composed_costs import composition_check

    def stage(name: str, center: float) -> StageResult:
        rounds = [center * (1 + 0.002 * ((i % 5) - 2)) for i in range(20)]
        result = StageResult(ResultId(name, "tiny", "eager", "fp32", 1, 64, 2))
        result.timing.rounds_s, result.timing.stats = rounds, stats_dict(rounds)
        return result

    target = _composition("tiny", 0.0, None)
    target.measured = {"status": "ok", "seconds_per_image": 0.060, "ci_s": 0.0004,
                       "seconds_by_kind": {"text_encoder": 0.002, "denoiser": 0.050, "vae": 0.008},
                       "ci_by_kind": {"text_encoder": 0.00002, "denoiser": 0.0002, "vae": 0.00005}}  # fmt: skip
    agreeing = {"text_encoder": stage("text_encoder", 0.002), "denoise_loop": stage("denoise_loop", 0.050),
                "vae_decode": stage("vae_decode", 0.008), "pipeline": stage("pipeline", 0.0601)}  # fmt: skip
    assert composition_check(target, agreeing)["agrees"]
    off = {**agreeing, "vae_decode": stage("vae_decode", 0.016), "pipeline": stage("pipeline", 0.068)}
    check = composition_check(target, off)
    assert check["agrees"] is False and check["off"] == "vae"


# -- static FLOP split --------------------------------------------------------------------------


def test_inspect_splits_flops_into_attention_convolution_and_gemm(capsys):
    assert main(["inspect", "sd15", "--resolution", "512", "--json"]) == 0
    at_512 = json.loads(capsys.readouterr().out)["stages"]["denoise_loop"]["flops_class_shares"]
    assert main(["inspect", "sd15", "--resolution", "1024", "--json"]) == 0
    at_1024 = json.loads(capsys.readouterr().out)["stages"]["denoise_loop"]["flops_class_shares"]
    assert sum(at_512.values()) == pytest.approx(1.0)
    assert at_512["attention"] == pytest.approx(0.157, abs=0.001)  # 15.7% of SD 1.5's UNet FLOPs at 512 px
    assert at_1024["attention"] > 2.5 * at_512["attention"]  # attention grows with the square of the tokens
