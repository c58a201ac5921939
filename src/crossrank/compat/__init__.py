"""FlagEmbedding drop-ins: the same constructors, ``compute_score`` signatures and values.

``from crossrank import FlagReranker, FlagLLMReranker`` is the usual way in (and
``LayerWiseFlagLLMReranker``, ``LightWeightFlagLLMReranker`` for the layer-wise LLM rerankers).
"""
