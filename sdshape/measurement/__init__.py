"""How a figure is taken: synchronized timing with warm-up excluded and rounds until stable
(``measure``, ``stopping``), memory peaks (``memory``), NVML sampling of power, energy, clocks and
throttling (``nvml``, ``sampling``, ``energy``, ``clocks``), parity against eager fp32 (``parity``),
profiling and the environment a result records."""
