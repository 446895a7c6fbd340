"""The shape explorer (``sdshape shapes``): a parameter budget, spent differently.

``compositions``: every composition within a budget, counted on the meta device;
``measure``: distinct components measured once and composed; ``chart``: the
Pareto chart and descriptions of a shapes document, torch-free for the report.
"""
