"""One option model: an option is declared once (RunOptions), every command and the plan derive from it, every
value is checked once, and the preflight size check is the static model's answer."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from sdshape.cli import main
from sdshape.config.declaring import FIT, INSPECT, RUN
from sdshape.config.options import RunOptions, add_options
from sdshape.config.plan import resolve
from sdshape.core.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
STEPS_ZERO = "--steps must be at least 1, got 0"

# A new option, added the way a contributor would: one field in RunOptions, nothing else edited. The script
# loads the edited options.py in place of the real one, then asks every consumer for the option.
ADD_ONE_OPTION = r"""
import importlib.util, json, sys
from pathlib import Path

root = Path(sys.argv[1])
sys.path.insert(0, str(root))
source = (root / "sdshape/config/options.py").read_text()
field = '    canary: int = option("--canary", "a new option", 7, kind=Bounds(int, 1, 9), where=HARNESSES)\n'
marker = "    @classmethod\n    def from_values"
assert source.count(marker) == 1
source = source.replace(marker, field + "\n" + marker)
import sdshape.config
spec = importlib.util.spec_from_loader("sdshape.config.options", loader=None)
module = importlib.util.module_from_spec(spec)
module.__file__ = str(root / "sdshape/config/options.py")
sys.modules["sdshape.config.options"] = module
sdshape.config.options = module
exec(compile(source, module.__file__, "exec"), module.__dict__)

from sdshape.cli.parser import build_parser
from sdshape.config.plan import plan_from
from sdshape.core.errors import UsageError
import bench.conftest as conftest

seen = {}
class Group:
    def addoption(self, flag, *aliases, **kwargs):
        seen[flag] = kwargs.get("default")
class PytestParser:
    def getgroup(self, *args):
        return Group()
conftest.pytest_addoption(PytestParser())

parser = build_parser(backend_flags=True)
args = parser.parse_args(["run", "--shape", "tiny", "--device", "cpu", "--canary", "3"])
plan = plan_from(vars(args))
try:
    parser.parse_args(["run", "--canary", "12"])
    refused = None
except UsageError as error:
    refused = str(error)
shapes = vars(parser.parse_args(["shapes", "--budget", "1e9", "--canary", "5"]))
print(json.dumps({
    "pytest_default": seen.get("--canary"),
    "resolved": plan.options.canary,
    "given": plan.given.canary,
    "recorded": plan.resolved_options().get("canary"),
    "refused": refused,
    "shapes": shapes.get("canary"),
}))
"""


def test_adding_an_option_is_one_edit():
    done = subprocess.run(
        [sys.executable, "-c", ADD_ONE_OPTION, str(ROOT)], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr
    reached = json.loads(done.stdout.strip().splitlines()[-1])
    assert reached == {
        "pytest_default": 7,  # pytest bench/'s options
        "resolved": 3,  # the plan's resolved options
        "given": 3,
        "recorded": 3,  # what a result document records
        "refused": "sdshape run: --canary must be at most 9, got 12",  # its bounds, declared with it
        "shapes": 5,  # shapes --measure takes it too
    }


def test_steps_out_of_bounds_is_one_line_in_the_same_words_from_every_command(capsys):
    for argv in (
        ["run", "--shape", "tiny", "--device", "cpu", "--steps", "0"],
        ["shapes", "--budget", "1e9", "--steps", "0"],
        ["fit", "sd15", "--steps", "0"],
        ["inspect", "sd15", "--steps", "0"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.count("--steps") == 1 and err.endswith(STEPS_ZERO), (argv, err)


def test_steps_out_of_bounds_from_pytest_is_refused_in_the_same_words():
    """pytest bench/'s parser takes the same bounds object; values that come without a parser meet it in
    RunOptions.check, once."""
    from _pytest.config.argparsing import Parser

    sys.path.insert(0, str(ROOT))
    import bench.conftest as conftest

    parser = Parser(processopt=None, _ispytest=True)
    conftest.pytest_addoption(parser)
    with pytest.raises(pytest.UsageError, match=r"argument --steps: must be at least 1, got 0$"):
        parser.parse(["--steps", "0"])
    with pytest.raises(UsageError) as refused:
        resolve(shape="tiny", device="cpu", steps=0)
    assert str(refused.value) == STEPS_ZERO


def test_steps_beyond_the_scheduler_are_checked_by_one_rule_for_run_fit_and_inspect(capsys, monkeypatch):
    """The bound that depends on the shape (its scheduler's training timesteps) is one function for all."""
    from sdshape.config import limits

    calls = []
    real = limits.check_steps

    def recorded(steps, scheduler):
        calls.append((steps, limits.train_timesteps(scheduler)))
        raise UsageError("stopped here")  # the commands' work after the check is not this test's

    monkeypatch.setattr(limits, "check_steps", recorded)
    with pytest.raises(UsageError, match="stopped here"):
        resolve(shape="tiny", device="cpu", steps=2, here=False)
    for argv in (["fit", "tiny", "--steps", "3"], ["inspect", "tiny", "--steps", "4"]):
        assert main(argv) == 2 and "stopped here" in capsys.readouterr().err
    assert calls == [(2, 1000), (3, 1000), (4, 1000)]
    with pytest.raises(UsageError, match="--steps must be at most 1000, got 1001"):
        real(1001, {"num_train_timesteps": 1000})


@pytest.mark.parametrize("harness", [FIT, INSPECT])
def test_fit_and_inspect_take_the_run_declarations(harness):
    """Same flag, same bounds object as run's; the help and default are the command's own only where the
    declaration says so (Elsewhere)."""
    declared: dict[str, dict] = {}
    add_options(lambda flag, *aliases, **kwargs: declared.setdefault(flag, kwargs), harness)
    run: dict[str, dict] = {}
    add_options(lambda flag, *aliases, **kwargs: run.setdefault(flag, kwargs), RUN)
    assert {"--steps", "--resolution", "--precision"} <= set(declared)
    for flag, kwargs in declared.items():
        assert kwargs.get("type") is run[flag].get("type") and kwargs["dest"] == run[flag]["dest"], flag
    assert not any(flag.startswith(("--ort-", "--compile-")) for flag in declared)  # no backend flags: no torch
    if harness == FIT:
        assert (declared["--precision"]["default"], declared["--batch"]["default"]) == ("fp16", 1)
        assert declared["--policy"]["default"] is None  # fit judges every policy unless told one


def test_the_plan_holds_the_resolved_options_and_the_given_ones():
    plan = resolve(shape="tiny", device="cpu", steps=2, here=False)
    assert plan.given.steps == 2 and plan.given.precision is None and plan.given.rounds is None
    assert (plan.options.precision, plan.options.rounds, plan.options.device) == ("fp32", 3, "cpu")
    assert (plan.rounds, plan.device.type, plan.backends, plan.weights) == (3, "cpu", ["eager"], None)
    assert resolve(shape="tiny", device="cpu", rounds="auto", here=False).rounds is None  # until stable
    reference = plan.with_options(precision="bf16")
    assert reference.options.precision == "bf16" and plan.options.precision == "fp32" and reference.given is plan.given
    recorded = plan.resolved_options()
    assert set(recorded) == {f.name for f in fields(RunOptions)} | {"backend_options"}
    assert recorded["rounds"] == 3 and recorded["backend"] == "eager" and recorded["sequence_length"] == 77


def test_the_preflight_is_the_static_models_peak(monkeypatch):
    """Refused at one byte less than the static model's all-resident peak, run at exactly it: no other
    estimate decides."""
    from sdshape.feasibility import preflight
    from sdshape.feasibility.formats import weight_format
    from sdshape.feasibility.policies import peak_bytes
    from sdshape.feasibility.trace_cache import cached_static

    plan = resolve(shape="tiny", device="cpu", steps=1, here=False)  # 64 px: the trace other tests make
    static = cached_static(plan.shape_spec, 64, 1, 1, weight_format("fp32"), False, False)
    peak = peak_bytes(static, "all_resident")
    monkeypatch.setattr(preflight, "device_memory", lambda device: (peak, "this machine has available"))
    preflight.check_fits(plan)
    monkeypatch.setattr(preflight, "device_memory", lambda device: (peak - 1, "this machine has available"))
    with pytest.raises(UsageError, match=r"the static model puts the peak at .* under all_resident"):
        preflight.check_fits(plan)


def test_a_model_the_trace_cannot_run_is_left_to_the_run_with_a_note(monkeypatch):
    """A --weights folder whose parts do not fit together fails the meta-device trace as it fails the run:
    the preflight does not judge it (the run's build records the failure in its rows) and says so."""
    from sdshape.feasibility import preflight

    def mismatched(*_, **__):
        raise RuntimeError("a and b must have same reduction dim, but got [154, 32] X [64, 64].")

    plan = resolve(shape="tiny", device="cpu", steps=1, here=False)
    monkeypatch.setattr(preflight, "cached_static", mismatched)
    preflight.check_fits(plan)
    assert any("static model could not trace this run (a and b must" in note for note in plan.notes)

    def overflow(*_, **__):
        raise RuntimeError("Storage size calculation overflowed with sizes=[1, 77000000000000]")

    monkeypatch.setattr(preflight, "cached_static", overflow)
    with pytest.raises(UsageError, match="over 2\\^63 bytes"):
        preflight.check_fits(plan)
