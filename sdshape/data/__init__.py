"""Packaged data, read with importlib.resources: the GPU catalog, published figures (performance and
quality) with their sources, the calibrated time model, and committed tables the torch-free report reads."""
