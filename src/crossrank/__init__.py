"""crossrank: fast, correct cross-encoder reranking for RAG pipelines."""

from .errors import CrossrankWarning, ModelLoadError
from .flag import FlagLLMReranker, FlagReranker
from .loading import DEFAULT_MODEL
from .reranker import Reranker
from .results import RankedDocument

__all__ = ["Reranker", "RankedDocument", "ModelLoadError", "CrossrankWarning", "DEFAULT_MODEL"]
__all__ += ["FlagReranker", "FlagLLMReranker"]
__version__ = "0.1.0"
