"""Rerank LlamaIndex nodes with a crossrank cross-encoder: ``CrossRankRerank``."""

from llama_index.postprocessor.crossrank.base import CrossRankRerank

from crossrank.sharing import RemoteRerankError

__all__ = ["CrossRankRerank", "RemoteRerankError"]
