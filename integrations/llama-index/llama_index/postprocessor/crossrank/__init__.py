"""Rerank LlamaIndex nodes with a crossrank cross-encoder: ``CrossRankRerank``."""

from llama_index.postprocessor.crossrank.base import CrossRankRerank

__all__ = ["CrossRankRerank"]
