"""``python -m spear_lab.server [serve] [options]``."""

import sys

from .cli import main

raise SystemExit(main(sys.argv[1:]))
