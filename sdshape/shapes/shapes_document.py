"""A shapes document (``sdshape shapes --out``'s ``shapes.json``) read back: is a file one, its conditions in one
line, a priced card's memory. Plain data, no drawing and no torch, so the report and the charts can read a saved
document without the explorer's measuring side."""

from __future__ import annotations

from typing import Any


def is_shapes_document(document: Any) -> bool:
    return isinstance(document, dict) and "budget" in document and isinstance(document.get("shapes"), list)


def conditions(document: dict[str, Any]) -> str:
    """The measurement conditions of a shapes document, in one line."""
    measured = document.get("measured_conditions") or {}
    return (
        f"{document['resolution']}x{document['resolution']}, {document['steps']} steps, batch 1, CFG; "
        f"{measured.get('backend', '-')} {measured.get('precision', '-')} on {measured.get('device', '-')}, "
        f"{measured.get('rounds', '-')} rounds per component"
    )


def document_vram(document: dict[str, Any], card: str) -> int:
    """The memory of one of the document's priced cards, in bytes."""
    return next(c["vram_bytes"] for c in document["priced_conditions"]["cards"] if c["name"] == card)
