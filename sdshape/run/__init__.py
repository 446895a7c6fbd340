"""One run, from plan to result file: sessions that build and measure each stage (``session``), the
campaign over backends and stages (``campaign``), turning measurements into result rows (``recording``),
residency policies (``residency``), progress, and the pytest-benchmark suite's glue (``benchsuite``)."""
