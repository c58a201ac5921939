"""The ``crossrank`` command: one module per subcommand, dispatched by :mod:`.commands`.

Importing this package imports no torch: ``crossrank --help`` stays fast.
"""

from .commands import main

__all__ = ["main"]
