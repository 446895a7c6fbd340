"""Flags several commands share, declared once: ``--store`` (every command that reads or writes the results
store, with ``run``'s ``store`` option in :mod:`sdshape.config.options` using the same forms), ``--json``
as a switch and ``--gpu-catalog`` (every command that prices on catalog cards). The run options that the
modelling commands share with ``run`` (``--steps``, ``--precision``...) are :class:`RunOptions` fields."""

from __future__ import annotations

from typing import Any

# The forms --store takes, on every command that has it.
STORE_FORMS = "a SQLite path or a postgresql:// URL; bare: the default store in the user data directory"


def add_store_flag(parser: Any, purpose: str, *, required: bool = False) -> None:
    """``--store``, declared once for every command that reads or writes the results store (``run``'s is its
    ``store`` option in :mod:`sdshape.config.options`, with the same forms): a path or URL, or bare for the
    user's default store."""
    parser.add_argument(
        "--store", nargs="?", const="", required=required, metavar="STORE", help=f"{purpose} ({STORE_FORMS})"
    )


def add_json_flag(parser: Any, what: str = "print JSON") -> None:
    """``--json`` as a switch: the command prints its answer as JSON instead of tables (``run``'s and
    ``bisect``'s ``--json PATH`` write a file instead, and say so)."""
    parser.add_argument("--json", action="store_true", help=what)


def add_catalog_flag(parser: Any) -> None:
    """``--gpu-catalog``: the user's own cards, for every command that prices on catalog cards."""
    parser.add_argument("--gpu-catalog", help="TOML file with your own cards, same form as the bundled catalog")
