"""The ``crossrank`` command: one module per subcommand, dispatched by :mod:`.commands`.

``rank``, ``evaluate`` (``crossrank eval``), ``train``, ``calibrate``, ``pseudo_queries``, ``serve``
and ``rerank_table`` each add their parser and run; the model options they share come from
:mod:`.options`, the rest they share from :mod:`.arguments`. Importing this package imports no
torch: ``crossrank --help`` stays fast.

>>> from crossrank.cli import main
>>> main(["rank", "--help"])  # doctest: +SKIP
"""

from .commands import main

__all__ = ["main"]
