"""Rerank Haystack documents with a crossrank cross-encoder: ``CrossRankRanker``."""

from crossrank.client.remote import RemoteRerankError

from .ranker import CrossRankRanker

__all__ = ["CrossRankRanker", "RemoteRerankError"]
