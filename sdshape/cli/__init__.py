"""The ``sdshape`` command: zoo, inspect, fit, backends, run, compare, history, publish, report, shapes, store,
matrix.

User mistakes raise :class:`~sdshape.core.errors.UsageError` and end as one line on
stderr with exit status 2; an output that cannot be written once the work is done
(:class:`~sdshape.core.errors.WriteError`) is one line and exit status 1; anything
else is a bug and keeps its traceback. Each
command lives in its own module, imported only when it runs, so the reading
commands (compare, history, report) start fast and without torch.
"""

from __future__ import annotations

import importlib
import os
import sys

from rich.console import Console

from sdshape.core.errors import UsageError, WriteError

COMMANDS = {
    "zoo": "inventory:cmd_zoo",
    "inspect": "inventory:cmd_inspect",
    "fit": "fit:cmd_fit",
    "backends": "inventory:cmd_backends",
    "run": "run:cmd_run",
    "compare": "reading:cmd_compare",
    "history": "reading:cmd_history",
    "publish": "publish:cmd_publish",
    "report": "reading:cmd_report",
    "shapes": "shapes:cmd_shapes",
    "store": "reading:cmd_store",
    "matrix": "matrix:cmd_matrix",
    "bisect": "bisect:cmd_bisect",
}
# Commands whose parser carries the flags the backends declare (loading them imports torch).
WITH_BACKEND_FLAGS = ("run", "shapes")


# A reader that stops reading stdout (`| head`, a pager that quits): exit 141, as a shell reports a process that
# SIGPIPE ended, with a line on stderr; never 1, which compare and history give a regression.
CLOSED_OUTPUT = 141


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """rich's own ends the process with status 1 and no word; :func:`main` says what happened instead."""
        self.quiet = True
        raise BrokenPipeError


def make_console() -> Console:
    """Stdout console; logs and pipes get 160 columns so the table is not folded."""
    console = _Console()
    return console if console.is_terminal else _Console(width=160)


def _closed_output() -> int:
    """stdout onto /dev/null (what is still buffered for it cannot fail at exit), and one line on stderr."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        print("sdshape: the output was closed before it was all written (its reader stopped)", file=sys.stderr)
    except (OSError, ValueError):
        pass  # stderr closed too: nothing can be said
    return CLOSED_OUTPUT


def _command_of(argv: list[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    from sdshape.cli.parser import build_parser
    from sdshape.core.quiet import quiet_libraries

    argv = sys.argv[1:] if argv is None else list(argv)
    quiet_libraries()
    console = make_console()
    try:
        args = build_parser(backend_flags=_command_of(argv) in WITH_BACKEND_FLAGS).parse_args(argv)
        args.argv = argv  # `sdshape run` records its own command in its rows (sdshape.cli.recorded)
        module, _, function = COMMANDS[args.command].partition(":")
        command = getattr(importlib.import_module(f"sdshape.cli.{module}"), function)
        return command(args, console)
    except UsageError as error:
        message = str(error)
        if not message.startswith("sdshape"):
            message = f"sdshape: error: {message}"
        print(message, file=sys.stderr)
        return 2
    except WriteError as error:  # the work was done; an output could not be written
        print(f"sdshape: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return _closed_output()
    except KeyboardInterrupt:
        print("sdshape: interrupted", file=sys.stderr)
        return 130
