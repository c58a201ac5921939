"""crossrank: fast, correct cross-encoder reranking for RAG pipelines."""

from .devices import CrossrankWarning
from .reranker import DEFAULT_MODEL, ModelLoadError, Reranker
from .results import RankedDocument

__all__ = ["Reranker", "RankedDocument", "ModelLoadError", "CrossrankWarning", "DEFAULT_MODEL"]
__version__ = "0.1.0"
