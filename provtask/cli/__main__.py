"""``python -m provtask.cli``."""

import sys

from . import main

sys.exit(main())
