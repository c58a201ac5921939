"""``python -m crossrank.cli``: the same as the ``crossrank`` command."""

import sys

from .commands import main

sys.exit(main())
