"""Run options are declared once (sdshape.config.options): every harness and the plan derive from the fields."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

import pytest

from sdshape.config.declaring import BENCH, RUN, SHAPES
from sdshape.config.options import DEFAULTS, RunOptions, add_options, backend_flags
from sdshape.config.plan import Plan
from sdshape.core.errors import UsageError


def _declared(harness: str) -> dict[str, dict]:
    seen: dict[str, dict] = {}

    def add_argument(flag: str, *aliases: str, **kwargs: object) -> None:
        seen[flag] = {"aliases": aliases, **kwargs}

    add_options(add_argument, harness)
    return seen


def test_every_field_is_a_flag_of_its_harnesses_with_its_own_default():
    for harness in (RUN, BENCH, SHAPES):
        declared = _declared(harness)
        for f in fields(RunOptions):
            if harness in f.metadata["where"]:
                flag = declared[f.metadata["flag"]]
                assert flag["dest"] == f.name and flag["default"] == f.default, (harness, f.name)
            else:
                assert f.metadata["flag"] not in declared, (harness, f.name)


def test_the_plan_repeats_no_option():
    """Each name is written once: the plan holds the options (resolved and given) and only what the device and
    the resolution decide; its defaults for the options are the declaration's."""
    option_names = {f.name for f in fields(RunOptions)}
    # the two the plan holds in the type the run needs: torch's device, and the cache folder as a checked Path
    assert option_names & {f.name for f in fields(Plan)} == {"device", "cache_dir"}
    assert {f.name: f.default for f in fields(Plan)}["given"] is DEFAULTS


def test_parsed_values_become_options_and_unknown_keys_are_left_alone():
    parser = argparse.ArgumentParser()
    add_options(parser.add_argument, RUN)
    values = vars(parser.parse_args(["--shape", "tiny", "--max-time", "5", "--seq-len", "40", "--unet", "tiny"]))
    options = RunOptions.from_values({**values, "not_an_option": 1})
    assert (options.shape, options.max_time_s, options.sequence_length, options.denoiser) == ("tiny", 5.0, 40, "tiny")
    assert options.given() == {"shape": "tiny", "max_time_s": 5.0, "sequence_length": 40, "denoiser": "tiny"}


def test_backend_flag_values_reach_their_own_backend_only():
    parser = argparse.ArgumentParser()
    add_options(parser.add_argument, RUN)
    values = vars(parser.parse_args(["--ort-provider", "cpu", "--compile-mode", "max-autotune"]))
    assert backend_flags(values) == {
        "onnxruntime": {"ort_provider": "cpu"},
        "compile": {"compile_mode": "max-autotune"},
    }


def test_two_backends_declaring_one_flag_are_refused_when_registered(monkeypatch):
    import sdshape.backends as registry
    from sdshape.backends.base import Option

    class Clashing:
        name = "clashing"
        options = (Option("provider", "its own provider", flag="--ort-provider"),)

    monkeypatch.setattr(registry, "backend_names", lambda: ["onnxruntime", "clashing"])
    real = registry.backend_class
    monkeypatch.setattr(registry, "backend_class", lambda name: Clashing if name == "clashing" else real(name))
    with pytest.raises(UsageError, match="'onnxruntime' and 'clashing' both declare --ort-provider"):
        registry.declared_flags()


def test_a_result_document_carries_the_resolved_options(tmp_path):
    from sdshape.cli import main

    out = tmp_path / "run.json"
    argv = ["run", "--shape", "tiny", "--device", "cpu", "--steps", "2", "--rounds", "2", "--warmup", "0"]
    assert main([*argv, "--no-parity", "--json", str(out)]) == 0
    options = json.loads(out.read_text())["options"]
    assert set(options) == {f.name for f in fields(RunOptions)} | {"backend_options"}
    assert (options["shape"], options["steps"], options["rounds"], options["precision"]) == ("tiny", 2, 2, "fp32")
    assert options["backend"] == "eager" and options["parity"] is False and options["json_path"] == str(out)


def test_a_backend_class_lacking_protocol_members_is_refused_naming_them(monkeypatch):
    import sdshape.backends as registry

    monkeypatch.setattr(registry, "_registered", lambda: {"bare": "tests.config.test_options:BareBackend"})
    with pytest.raises(UsageError, match="lacks options, variants, keeps_module, configure of the backend protocol"):
        registry.backend_class("bare")


class BareBackend:
    """Only what the first protocol asked for: a name, available and prepare."""

    name = "bare"

    def available(self):
        return True, None

    def prepare(self, module, example_inputs, precision, device, cache):
        return module
