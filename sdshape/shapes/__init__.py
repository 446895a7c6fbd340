"""The shape explorer (``sdshape shapes``): a parameter budget, spent differently.

``compositions``: every composition within a budget, counted on the meta device; ``composed_costs``: distinct
components measured once and composed; ``priced``: priced on catalog cards by the static model; ``beside``: the
model beside the measurement; ``shapes_document`` and ``fronts``: a saved document read back and its Pareto
fronts, torch-free for the report. The charts are drawn in ``sdshape.present.charts``.
"""
