"""crossrank: fast, correct cross-encoder reranking for RAG pipelines.

The names below are imported on first use (PEP 562), so ``import crossrank`` and the
``crossrank`` command's ``--help`` do not pay for torch and transformers.

>>> from crossrank import Reranker  # imports torch here  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, List

from .errors import CrossrankWarning, ModelLoadError

__version__ = "0.1.0"

_LAZY = {
    "DEFAULT_MODEL": ".loading",
    "FlagLLMReranker": ".flag_llm",
    "FlagReranker": ".flag",
    "RankedDocument": ".results",
    "Reranker": ".reranker",
}

__all__ = ["Reranker", "RankedDocument", "ModelLoadError", "CrossrankWarning", "DEFAULT_MODEL"]
__all__ += ["FlagReranker", "FlagLLMReranker"]

if TYPE_CHECKING:  # pragma: no cover
    from .flag import FlagReranker
    from .flag_llm import FlagLLMReranker
    from .loading import DEFAULT_MODEL
    from .reranker import Reranker
    from .results import RankedDocument


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'crossrank' has no attribute {name!r}")


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_LAZY))
