"""Printing and drawing: terminal tables (rich), Markdown, charts (matplotlib, all in ``present/charts``),
the report and the dashboard. Nothing here measures or decides a verdict; it shows what ``run``,
``regression``, ``feasibility`` and ``shapes`` computed.

Every terminal printer has one form, ``print_<what>(data, console, *details)``: the data a command computed
first, the console second (stdout's, or a test's recording console), then what only that table needs; it
prints and returns nothing. Every chart is ``<what>_png(data, path, ...)`` or a function of
``present/charts`` that returns the written paths.
"""
