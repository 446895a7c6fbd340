"""The structure the README promises: a reading side without torch, no import cycle, small modules,
and result files that read the same before and after the redesign."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "sdshape").rglob("*.py"), *(ROOT / "backends").glob("*.py")])
NO_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"torch is not importable here: {name}")
sys.meta_path.insert(0, NoTorch())
from sdshape.cli import main
code = main(sys.argv[1:])
assert "torch" not in sys.modules
sys.exit(code)
"""


def _module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[0] == "backends":
        parts = ["sdshape", *parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@pytest.mark.parametrize(
    "argv",
    [
        ["compare", "results/examples/threads/1-two-threads.json", "results/examples/threads/2-one-thread.json"],
        ["history", "results/examples/threads", "--out", "{tmp}/history"],
        ["report", "results/cpu-amd-epyc/2026-11-22-sd15-eager-fp32.json", "--out", "{tmp}/report"],
    ],
    ids=["compare", "history", "report"],
)
def test_the_reading_commands_run_without_torch(argv, tmp_path):
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    done = subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode in (0, 1), done.stderr  # compare exits 1 on the planted regression
    assert "Traceback" not in done.stderr


# The layers (README, "Architecture"): each package and the packages it may import, at any level.
# The reading side (core, result, regression, present) also imports without torch (test below).
LAYERS: dict[str, set[str]] = {
    "core": set(),
    "result": {"core"},
    "store": {"core", "result"},
    "regression": {"core", "result", "store"},
    "measurement": {"core", "result"},
    "models": {"core", "backends"},
    "backends": {"core", "models"},
    "config": {"core", "models", "measurement", "backends"},
    "feasibility": {"core", "result", "models", "backends"},
    "run": {"core", "result", "measurement", "models", "config", "backends"},
    "shapes": {"core", "result", "models", "run", "feasibility"},  # shapes --gpu prices with the static model
    "fleet": {"core", "result", "config"},
    "present": {"core", "result", "regression", "store", "measurement", "feasibility", "shapes"},
    "cli": {
        "fleet",
        "store",
        "core",
        "result",
        "regression",
        "measurement",
        "models",
        "config",
        "feasibility",
        "run",
        "shapes",
        "present",
        "backends",
    },
    "data": set(),
}
READING_SIDE = ("core", "result", "store", "regression", "present")


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_packages_import_only_the_layers_below_them():
    for path in SOURCES:
        own = _package(_module_name(path))
        if own == "" or (own not in LAYERS and path.parent == ROOT / "sdshape"):
            continue
        assert own in LAYERS, f"{path.relative_to(ROOT)}: package {own!r} is not in the layer table"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("sdshape.") and _package(target) != own:
                    assert _package(target) in LAYERS[own], (
                        f"{path.relative_to(ROOT)} imports {target}: {own} may import {sorted(LAYERS[own])}"
                    )


def test_the_reading_side_imports_without_torch():
    """Every module of the reading packages, imported with torch unimportable."""
    modules = sorted(
        _module_name(path)
        for path in SOURCES
        if _package(_module_name(path)) in READING_SIDE and path.name != "__main__.py"
    )
    script = (
        NO_TORCH.split("from sdshape.cli")[0]
        + "import importlib\n"
        + "".join(f"importlib.import_module({name!r})\n" for name in modules)
        + "assert 'torch' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert len(modules) > 20


def test_no_import_cycle_among_module_level_imports():
    """Module-level imports only: a function-level import is resolved after every module has loaded."""
    names = {_module_name(path): path for path in SOURCES}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        found = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                candidates = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
                found |= {c for c in candidates if c in names and c != name}
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names if alias.name in names}
        graph[name] = found
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = [*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


# The modules allowed over 300 lines, each with its reason. A docstring cannot grant itself the exception;
# an entry that no longer needs it fails too, so the list stays true.
LONG_MODULES = {
    "sdshape/result/records.py": "every nested record of a row beside the one mapping they share",
    "sdshape/result/model.py": "the row's sections and their JSON mapping stay together",
    "sdshape/run/session.py": "one session's order of work (baseline, build, prepare, rounds, readings) in one place",
}


def test_modules_stay_small_or_are_listed():
    long = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in SOURCES}
    long = {path: count for path, count in long.items() if count > 300}
    unlisted = {path: count for path, count in long.items() if path not in LONG_MODULES}
    assert not unlisted, f"over 300 lines and not in LONG_MODULES: {unlisted}"
    stale = sorted(set(LONG_MODULES) - set(long))
    assert not stale, f"in LONG_MODULES but no longer over 300 lines: {stale}"


def test_every_committed_result_file_still_reads():
    from sdshape.core.vocabulary import current_stage
    from sdshape.result.io import load
    from sdshape.shapes.shapes_document import is_shapes_document

    for path in [*(ROOT / "results").rglob("*.json"), *(ROOT / "tests" / "data").rglob("*.json")]:
        document = json.loads(path.read_text())
        if is_shapes_document(document):
            continue
        if path.name.endswith("loop-vs-diffusers.json"):  # bench/loop_vs_diffusers.py's figures
            assert {"torch", "rows"} <= set(document) and all(0 < r["ratio"] < 2 for r in document["rows"]), path
            continue
        bench_figures = ("false-alarms.json", "store-benchmark.json", "format_parity.json", "detection.json")
        if path.name in bench_figures:  # bench scripts' figures
            assert {"measured", "machine"} <= set(document), path
            continue
        if path.name == "checks.json":  # bench/checks.py's verdicts; their rounds are in rounds-auto.json
            measured = load(path.parent / "rounds-auto.json")
            rounds = {f"{key[0]}@{key[2]}": len(row.rounds) for key, row in measured.rows.items()}
            # checks.json was written before the families: its unet_loop is today's denoise_loop.
            named = {
                f"{current_stage(n.split('@')[0])}@{n.split('@')[1]}": v for n, v in document["rounds-auto"].items()
            }
            assert {name: v["rounds"] for name, v in named.items()} == rounds, path
            continue
        result = load(path)
        assert result.rows, path
        for row in result.rows.values():
            assert row.to_extra_info()["id"] == row.id.as_dict()


@pytest.mark.slow
def test_a_file_from_before_the_redesign_compares_cleanly_with_one_from_after(tmp_path, capsys):
    """The committed 10-round tiny run (written before the typed results) against the same run now:
    every id on both sides, same statuses, memory from the same source: no spurious difference."""
    from sdshape.cli import main

    old = ROOT / "results" / "examples" / "threads" / "1-two-threads.json"
    new = tmp_path / "new.json"
    argv = ["run", "--shape", "tiny", "--device", "cpu", "--steps", "4", "--rounds", "10", "--warmup", "2"]
    assert main([*argv, "--json", str(new)]) == 0
    capsys.readouterr()
    main(["compare", str(old), str(new), "--json"])
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 4
    for entry in results:
        assert entry["verdict"] not in ("only_base", "only_new", "status_change"), entry
        assert entry["metrics"]["memory"]["source"] == "host_rss_peak_bytes"
        assert "different sources" not in entry["metrics"]["memory"]["reason"]


def test_rows_carry_the_schema_version_and_a_newer_one_is_refused(tmp_path, capsys):
    """Old rows (no version) are upgraded on read; a row from a newer sdshape is one line and exit 2."""
    from sdshape.cli import main
    from sdshape.result.io import load
    from sdshape.result.schema import SCHEMA_VERSION

    old = ROOT / "tests" / "data" / "gpu-runs" / "2026-11-22-h100" / "sd15-eager-fp16.json"
    rows = load(old).rows.values()
    assert {row.stage for row in rows} == {"text_encoder", "denoise_loop", "vae_decode", "pipeline"}
    assert all(row.to_extra_info()["schema_version"] == SCHEMA_VERSION for row in rows)
    document = json.loads(old.read_text())
    document["benchmarks"][0]["extra_info"]["schema_version"] = SCHEMA_VERSION + 1
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(document))
    assert main(["compare", str(old), str(newer)]) == 2
    err = capsys.readouterr().err
    assert f"results schema {SCHEMA_VERSION + 1}" in err and "upgrade sdshape" in err and err.count("\n") == 1
