"""Print each public figure beside the static model's projection, with the median and largest error.

    python maintainer/validate_projections.py [--write] [--json FILE] [--check]

--write recalibrates sdshape/data/time_model.json; --check exits 1 when a target is missed (CI runs it
through tests/feasibility/test_static_model.py).
"""

from __future__ import annotations

import sys

from sdshape.feasibility.validation import main

if __name__ == "__main__":
    sys.exit(main())
