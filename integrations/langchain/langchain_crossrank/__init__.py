"""LangChain integration for crossrank: rerank retrieved documents with a cross-encoder."""

from crossrank.client.remote import RemoteRerankError

from .cross_encoder import CrossRankCrossEncoder
from .rerank import CrossRankRerank

__all__ = ["CrossRankRerank", "CrossRankCrossEncoder", "RemoteRerankError"]
__version__ = "0.1.0"
