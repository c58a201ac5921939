"""Rerank LlamaIndex nodes with a crossrank cross-encoder: ``CrossRankRerank``."""

from llama_index.postprocessor.crossrank.base import CrossRankRerank

from crossrank.client.remote import RemoteRerankError

__all__ = ["CrossRankRerank", "RemoteRerankError"]
