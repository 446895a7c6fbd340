"""Printing and drawing: terminal tables (rich), Markdown, charts (matplotlib), the report and the
dashboard. Nothing here measures or decides a verdict; it shows what ``run``, ``regression``, ``feasibility``
and ``shapes`` computed."""
