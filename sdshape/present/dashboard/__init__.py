"""``sdshape publish``: the store's history as a static HTML site (an index and one page per timeline)."""
