"""Keep the model libraries' import-time chatter out of sdshape's own output.

bitsandbytes, torchao, diffusers and torch log warnings when they are imported on a machine without
their optional kernels ("Failed to load CPU gemm_4bit_forward from kernels-community", torchao's missing
CUDA extensions, torch's pytree deprecations). None of it is about what the user asked, so the command line
raises those loggers to errors; a library used from Python keeps its own settings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator

LOGGERS = ("bitsandbytes", "torchao", "torch.utils._pytree", "diffusers", "transformers", "accelerate")


def quiet_libraries() -> None:
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


def quiet_ray() -> dict[str, object]:
    """Ray's driver-side chatter (the token-authentication warning, "Started a local Ray instance", the
    usage-stats notice) kept out of ``sdshape matrix``'s output: set before Ray is imported; returns the
    ``ray.init`` options that keep its loggers at errors and the workers' output in their log files.
    A variable the user set stays as set."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    logging.getLogger("ray").setLevel(logging.ERROR)
    return {"logging_level": logging.ERROR, "log_to_driver": False}


# Lines torch's profiler (libkineto) writes straight to file descriptor 2 on every start and stop, past
# Python's logging: "USDT:2026-12-04 16:03:40 17747:17747 SyncActivityProfilerHandler.cpp:52] profiler_start".
NATIVE_NOISE = re.compile(r"^USDT:|^(STAGE|INFO|WARNING):\d{4}-\d\d-\d\d .*\.cpp:\d+\]")


@contextlib.contextmanager
def filtered_native_stderr(noise: re.Pattern[str] = NATIVE_NOISE) -> Iterator[None]:
    """Hold what native code writes to stderr while the block runs, then pass on every line but ``noise``:
    an error a library prints there still reaches the user."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (an embedding host): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().decode(errors="replace").splitlines() if not noise.search(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)
