"""Every chart sdshape draws (matplotlib, Agg, no torch), each a PNG from data others computed.

``stage_shares``: a run's per-stage shares and its kernel classes (``report``); ``field_shares``: how published
systems split parameters, bytes and FLOPs (``report``, ``inspect --all --chart``); ``quality_cost``: published
quality against modelled cost (``report``, ``inspect --all --quality --out``); ``explorer``: a shapes document's
Pareto, priced and model-beside-measurement charts (``shapes --out``, ``report``); ``timelines``: one chart per
history timeline (``history --out``).
"""
