"""Residency policies in runs (`sdshape run --policy`): diffusers' and accelerate's own hooks on each component,
fired by the very stage calls that are timed, with outputs equal to all resident's; wired on the CPU (where the
offload device is the compute device, so nothing moves), the policies that need a GPU refused in one line, and
every policy run on a GPU where there is one."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

from sdshape.cli import main
from sdshape.core.vocabulary import KIND_OF_STAGE, POLICIES

CPU_POLICIES = ["model_offload", "sequential_offload", "group_offload_block", "group_offload_leaf",
                "text_encoders_dropped"]  # fmt: skip
OFFLOADED = {"all_resident": (), "text_encoders_dropped": ("text_encoder",)}  # else every kind


def run_json(tmp_path, monkeypatch, *argv: str, device: str = "cpu", rounds: str = "1") -> dict[str, dict]:
    monkeypatch.setenv("SDSHAPE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out.json"
    assert main(["run", "--device", device, "--steps", "2", "--rounds", rounds, "--warmup", "0", "--json", str(out),
                 *argv]) == 0  # fmt: skip
    return {b["extra_info"]["stage"]: b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]}


def count_hooks(monkeypatch) -> Counter:
    """Each library hook's firings, by kind: accelerate's model offload (and its offload back), its sequential
    offload, diffusers' group onloads. Patched on the classes, so every hook installed afterwards counts."""
    from accelerate.hooks import AlignDevicesHook, CpuOffload, UserCpuOffloadHook
    from diffusers.hooks.group_offloading import ModuleGroup

    fired: Counter = Counter()
    patched = (
        (CpuOffload, "pre_forward", "model_offload"),
        (UserCpuOffloadHook, "offload", "back"),
        (AlignDevicesHook, "pre_forward", "sequential"),
        (ModuleGroup, "onload_", "group"),
    )
    for cls, name, label in patched:
        original = getattr(cls, name)

        def counted(*args, _original=original, _label=label, **kwargs):
            fired[_label] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(cls, name, counted)
    return fired


def stage_outputs(shape: str, policy: str, device: str, fired: Counter | None = None) -> dict:
    """Each stage's output from one untimed call of the session's own stage objects (what the rounds time),
    the hooks each call fired, and the devices each kind's weights sit on before and after the calls."""
    from sdshape.config.plan import resolve
    from sdshape.models.quantize import library_models
    from sdshape.run.session import Session

    plan = resolve(shape=shape, device=device, steps=2, rounds=1, warmup=0, precision="fp32", policy=policy)
    found: dict = {"outputs": {}, "fired": {}, "placed": {}}
    with Session(plan, "eager") as session:
        session.build()
        assert session.build_error is None, session.build_error

        def placed() -> dict[str, set[str]]:
            return {kind: {p.device.type for m in library_models(module) for p in m.parameters()}
                    for kind, module in session.built.modules.items()}  # fmt: skip

        found["placed"]["built"] = placed()
        with torch.inference_mode():
            for stage in ("text_encoder", "denoise_loop", "vae_decode", "pipeline"):
                before = Counter(fired or {})
                output = session.stages[stage].run()
                output = output[0] if isinstance(output, tuple) else output
                found["outputs"][stage] = output.detach().float().cpu()
                found["fired"][stage] = Counter(fired or {}) - before
                found["placed"][stage] = placed()
    return found


@pytest.fixture(scope="module")
def all_resident() -> dict[str, dict]:
    """All resident's outputs, per shape (computed once)."""
    return {shape: stage_outputs(shape, "all_resident", "cpu")["outputs"] for shape in ("tiny", "tiny-flux")}


@pytest.mark.parametrize(
    "policy, shape",
    [(policy, "tiny") for policy in CPU_POLICIES]
    + [
        pytest.param("model_offload", "tiny-flux", marks=pytest.mark.slow),
        pytest.param("group_offload_block", "tiny-flux", marks=pytest.mark.slow),
    ],
)  # every policy on one family; two encoders (FLUX's CLIP and T5) under the two hook kinds (slow set)
def test_every_policy_the_cpu_allows_fires_the_libraries_hooks_in_each_timed_call_and_matches_all_resident(
    policy, shape, all_resident, monkeypatch
):
    fired = count_hooks(monkeypatch)
    found = stage_outputs(shape, policy, "cpu", fired)
    for stage, output in found["outputs"].items():
        torch.testing.assert_close(output, all_resident[shape][stage], rtol=1e-6, atol=1e-6, msg=stage)
    assert_hooks_fired(found, policy, encoders=2 if shape == "tiny-flux" else 1)


def assert_hooks_fired(found: dict, policy: str, encoders: int) -> None:
    """Every call of a stage whose component is offloaded goes through the library's hook, and no other does;
    under model offload the call also sends its components back (so each round pays the trip)."""
    offloaded = OFFLOADED.get(policy, tuple(KIND_OF_STAGE.values()))
    label = {"model_offload": "model_offload", "sequential_offload": "sequential"}.get(policy, "group")
    for stage, kind in KIND_OF_STAGE.items():
        assert (found["fired"][stage][label] > 0) == (kind in offloaded), (stage, found["fired"][stage])
        if policy == "model_offload":
            assert found["fired"][stage]["back"] == (encoders if kind == "text_encoder" else 1)
    assert (found["fired"]["pipeline"][label] > 0) == bool(offloaded)


def test_the_hooks_are_the_libraries_own_in_pipeline_order():
    from sdshape.models.build import build_shape
    from sdshape.models.quantize import library_models
    from sdshape.models.zoo import get_shape
    from sdshape.run.residency import install

    def built():
        return build_shape(get_shape("tiny-flux"), torch.device("cpu"), torch.float32, 0, None, torch.float32, None)

    shape = built()
    model_offload = install(shape.modules, "model_offload", torch.device("cpu"))
    # chained in pipeline order, as enable_model_cpu_offload chains FLUX's components
    assert [name.split("(")[1][:-1] for name in model_offload.installed] == [
        "CLIPTextModel", "T5EncoderModel", "FluxTransformer2DModel", "AutoencoderKL"]  # fmt: skip
    assert all(hasattr(m, "_hf_hook") for m in library_models(shape.modules["denoiser"]))
    assert model_offload.after_call("denoiser") is not None and model_offload.after_call("nothing") is None
    shape = built()
    grouped = install(shape.modules, "group_offload_block", torch.device("cpu"), vae_tiling=True, vae_slicing=True)
    transformer = library_models(shape.modules["denoiser"])[0]
    assert transformer.transformer_blocks[0]._diffusers_hook.get_hook("group_offloading") is not None
    vae = library_models(shape.modules["vae"])[0]
    # on the VAE itself, as enable_group_offload puts it: its decoder's blocks are groups, so decode fires them
    assert vae.decoder.up_blocks[0]._diffusers_hook.get_hook("group_offloading") is not None
    assert vae.use_tiling and vae.use_slicing and "block_level" in " ".join(grouped.installed)
    assert grouped.resident_bytes({"text_encoder": 5, "denoiser": 7, "vae": 3}) == 0
    assert grouped.after_call("denoiser") is None  # group hooks move weights themselves, per call


def test_a_policy_run_records_it_and_is_parity_checked_against_all_resident(tmp_path, monkeypatch, capsys):
    rows = run_json(tmp_path, monkeypatch, "--shape", "tiny", "--policy", "group_offload_leaf")
    for stage, row in rows.items():
        assert row["status"] == "ok" and row["parity"]["ok"], (stage, row["parity"])
        assert row["parity"]["is_reference"] is False and row["parity"]["rel_l2"] == 0.0  # all resident's output
        assert row["policy"] == "group_offload_leaf" and row["vae_tiling"] is False
        assert row["memory"]["host_rss_peak_bytes"] > 0  # offload keeps the weights in host memory: recorded
    assert " · group_offload_leaf · " in capsys.readouterr().out.replace("\n", " ")  # the conditions line


def test_under_offload_a_gpu_peak_has_no_weights_floor_and_the_host_rss_peak_is_printed():
    from sdshape.present.tables import footnotes
    from sdshape.result.model import Conditions, Memory, ResultId, StageResult
    from sdshape.result.records import MemoryFigures

    # a group-offloaded loop holds one block at a time: far below its weights, and true (0 resident: no floor)
    offloaded = MemoryFigures(weights_bytes=100 << 20, resident_weights_bytes=0, torch_allocated_peak_bytes=9 << 20)
    assert Memory(offloaded).checked("cuda").figures.torch_allocated_peak_bytes == 9 << 20
    older = MemoryFigures(weights_bytes=100 << 20, torch_allocated_peak_bytes=9 << 20)  # no resident figure
    assert Memory(older).checked("cuda").figures.torch_allocated_peak_bytes is None  # its own weights: flagged
    rows = [
        StageResult(ResultId(stage, "tiny", "eager", "fp16", 1, 64, 2), conditions=Conditions("cuda", policy=policy),
                    memory=Memory(MemoryFigures(host_rss_peak_bytes=3 << 30)))
        for stage in ("text_encoder", "pipeline") for policy in ("model_offload",)
    ]  # fmt: skip
    assert "host RSS peak under model_offload (offloaded weights live there): text_encoder 3.00 GiB" in " ".join(
        footnotes(rows)
    )
    rows[0].conditions.policy = rows[1].conditions.policy = "all_resident"
    assert not any("host RSS peak under" in line for line in footnotes(rows))


def test_a_file_written_before_policies_reads_all_resident_and_prints_it():
    from pathlib import Path

    from sdshape.present.tables import conditions
    from sdshape.result.io import load

    old = load(Path(__file__).parents[2] / "results/cpu-amd-epyc/2026-11-22-sd15-eager-fp32.json")
    rows = list(old.rows.values())
    assert {(r.conditions.policy, r.conditions.vae_tiling, r.conditions.vae_slicing) for r in rows} == {
        ("all_resident", False, False)
    }
    assert " · all_resident · " in conditions(rows[0])


def test_a_tiled_sliced_decode_is_recorded_and_still_matches(tmp_path, monkeypatch):
    rows = run_json(tmp_path, monkeypatch, "--shape", "tiny", "--vae-tiling", "--vae-slicing", "--batch", "2")
    decode = rows["vae_decode"]
    assert decode["status"] == "ok" and decode["parity"]["ok"] and decode["vae_tiling"] and decode["vae_slicing"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--policy", "swap"], "unknown policy 'swap'; valid choices: all_resident, text_encoders_dropped"),
        (["--policy", "group_offload_leaf_stream"], "--policy group_offload_leaf_stream needs a CUDA GPU"),
        (["--policy", "group_offload_block_stream"], "--policy group_offload_block_stream needs a CUDA GPU"),
        (["--policy", "model_offload", "--backend", "onnxruntime"], "backend onnxruntime runs its own copy"),
        (["--policy", "sequential_offload", "--backend", "compile:tuned"], "rewrites the layers"),
        (["--policy", "sequential_offload", "--precision", "gguf-q8_0"], "quantized tensors do not survive"),
        (["--policy", "model_offload", "--precision", "int8"], "cannot move torchao's int8 weights"),
    ],
)
def test_a_policy_that_cannot_run_here_is_one_line_and_exit_2(argv, message, capsys):
    assert main(["run", "--shape", "tiny", "--device", "cpu", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.gpu
@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_runs_on_a_gpu_moves_the_weights_and_matches_all_resident(policy, tmp_path, monkeypatch):
    fired = count_hooks(monkeypatch)
    found = stage_outputs("tiny", policy, "cuda", fired)
    assert_hooks_fired(found, policy, encoders=1)
    offloaded = OFFLOADED.get(policy, tuple(KIND_OF_STAGE.values()))
    for when, placed in found["placed"].items():  # after the build and after each stage's call: off the GPU
        for kind, devices in placed.items():
            assert ("cuda" in devices) == (kind not in offloaded), (when, kind, devices)
    monkeypatch.undo()
    rows = run_json(tmp_path, monkeypatch, "--shape", "tiny", "--policy", policy, device="cuda", rounds="2")
    for stage, row in rows.items():
        assert row["status"] == "ok" and row["policy"] == policy, (stage, row["message"])
        assert row["parity"]["ok"], (stage, row["parity"])  # against eager fp32 all resident
        assert row["memory"]["host_rss_peak_bytes"] is not None
        assert "weights resident" not in (row["memory_error"] or ""), row["memory_error"]  # no false floor
