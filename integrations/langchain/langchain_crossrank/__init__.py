"""LangChain integration for crossrank: rerank retrieved documents with a cross-encoder."""

from .rerank import CrossRankRerank

__all__ = ["CrossRankRerank"]
__version__ = "0.1.0"
