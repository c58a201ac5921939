"""crossrank: fast, correct cross-encoder reranking for RAG pipelines."""

from .errors import CrossrankWarning, ModelLoadError
from .flag import FlagReranker
from .flag_llm import FlagLLMReranker
from .loading import DEFAULT_MODEL
from .reranker import Reranker
from .results import RankedDocument

__all__ = ["Reranker", "RankedDocument", "ModelLoadError", "CrossrankWarning", "DEFAULT_MODEL"]
__all__ += ["FlagReranker", "FlagLLMReranker"]
__version__ = "0.1.0"
