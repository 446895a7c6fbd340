"""The command a run records in its rows, so that ``compare --confirm``, ``history --confirm`` and
``sdshape bisect`` can run the same job again.

It is the ``sdshape run`` argument list as given, less the outputs a rerun must not reuse: ``--json
PATH`` (a rerun would overwrite the file) and ``--store [URL]`` (a rerun is stored where the rerunning
command says). ``--save`` and ``--results-dir`` stay: a saved file is never overwritten. argparse takes
unambiguous prefixes (``--js``) and ``--flag=value``; both are recognised here as argparse read them.
"""

from __future__ import annotations

# The dropped flags, and whether each takes a value always (True) or optionally (None: ``--store`` alone).
DROPPED: dict[str, bool | None] = {"--json": True, "--store": None}


def _dropped_flag(token: str) -> str | None:
    name = token.split("=", 1)[0]
    if not name.startswith("--") or len(name) < 3:  # argparse took the prefix: it was unambiguous
        return None
    return next((flag for flag in DROPPED if flag.startswith(name)), None)


def recorded_command(argv: list[str]) -> list[str]:
    """``argv`` (starting with ``run``) less ``--json PATH`` and ``--store [URL]``, in any form argparse took."""
    kept: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        index += 1
        flag = _dropped_flag(token)
        if flag is None:
            kept.append(token)
            continue
        if "=" in token:
            continue
        takes = DROPPED[flag]
        if takes or (takes is None and index < len(argv) and not argv[index].startswith("-")):
            index += 1
    return kept


def to_text(command: list[str]) -> str:
    """The command as a shell line (for messages and docs)."""
    import shlex

    return "sdshape " + shlex.join(command)
