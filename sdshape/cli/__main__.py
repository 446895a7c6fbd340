"""``python -m sdshape.cli``."""

import sys

from sdshape.cli import main

sys.exit(main())
