"""crossrank's exceptions and warnings, and the one-time note helper."""

from __future__ import annotations

import threading
import warnings


class ModelLoadError(OSError):
    """The model could not be loaded (missing path, unreachable hub, not a reranker)."""


class ArgumentError(TypeError, ValueError):
    """An argument of the wrong type or value; both ``except TypeError`` and ``except ValueError``
    catch it, so callers written against either keep working."""


class CrossrankWarning(UserWarning):
    """Warnings crossrank emits: settings it ignored or changed, and how to silence them."""


_noted: set = set()
_noted_lock = threading.Lock()


def warn_once(key: str, message: str, stacklevel: int = 3) -> None:
    """Emit ``message`` as a :class:`CrossrankWarning` the first time ``key`` is seen."""
    with _noted_lock:
        if key in _noted:
            return
        _noted.add(key)
    warnings.warn(message, CrossrankWarning, stacklevel=stacklevel)


def reset_notes() -> None:
    """Forget which one-time notes were given (each is shown again); tests use this."""
    with _noted_lock:
        _noted.clear()
