"""Typed results: the model (``model``), the memory rules (``rules``), the JSON document (``document``),
reading files (``io``) and the environment fingerprint's fields (``fingerprint``). Nothing here imports torch."""
