"""The install hint for crossrank's Ray extra (its own module: the package and its modules use it
without importing each other)."""

RAY_INSTALL = "pip install 'crossrank[ray]'"
