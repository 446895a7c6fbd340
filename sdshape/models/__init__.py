"""What is measured: component specs from published configs (``zoo``), the model families' call contracts
(``families``), building them with random weights (``build``), the stage modules (``stages``, ``wiring``),
parameter, byte and FLOP counts (``flops``, ``inspection``) and weight formats (``quantize``, ``kquants``)."""
