"""crossrank: fast, correct cross-encoder reranking for RAG pipelines.

The names below are imported on first use (PEP 562), so ``import crossrank`` and the
``crossrank`` command's ``--help`` do not pay for torch and transformers.

>>> from crossrank import Reranker  # imports torch here  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import CrossrankWarning, ModelLoadError
from .lazy import lazy_exports

__version__ = "0.1.0"

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DEFAULT_MODEL": ".loading",
        "FlagLLMReranker": ".compat.flag_llm",
        "FlagReranker": ".compat.flag",
        "LayerWiseFlagLLMReranker": ".compat.flag_layerwise",
        "LightWeightFlagLLMReranker": ".compat.flag_layerwise",
        "RankedDocument": ".results",
        "Reranker": ".reranker",
    },
    globals(),
)

__all__ = ["Reranker", "RankedDocument", "ModelLoadError", "CrossrankWarning", "DEFAULT_MODEL"]
__all__ += ["FlagReranker", "FlagLLMReranker"]
__all__ += ["LayerWiseFlagLLMReranker", "LightWeightFlagLLMReranker"]

if TYPE_CHECKING:  # pragma: no cover
    from .compat.flag import FlagReranker
    from .compat.flag_layerwise import LayerWiseFlagLLMReranker, LightWeightFlagLLMReranker
    from .compat.flag_llm import FlagLLMReranker
    from .loading import DEFAULT_MODEL
    from .reranker import Reranker
    from .results import RankedDocument

