"""Package attributes imported on first use (PEP 562), so importing a package stays cheap.

``crossrank``, ``crossrank.calibration`` and ``crossrank.training`` name things whose modules
import torch or numpy; with :func:`lazy_exports` the import happens when a name is first used.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, List, Tuple


def lazy_exports(
    package: str, names: Dict[str, str], namespace: Dict[str, Any]
) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``names`` maps an attribute to its module
    (relative to ``package``); ``namespace`` is the package's ``globals()``, where a loaded name
    is kept so later look-ups skip the hook."""

    def __getattr__(name: str) -> Any:
        if name in names:
            value = getattr(importlib.import_module(names[name], package), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> List[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
