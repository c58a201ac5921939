"""Scale-out on Ray: batch reranking of tables with Ray Data, the service replicated with Ray Serve.

Needs ``pip install crossrank[ray]``. Nothing here scores by itself: every actor or replica holds
one :class:`crossrank.Reranker` and calls its pipeline, so a score is the same number whichever
way it was asked for.

>>> import ray.data                                                    # doctest: +SKIP
>>> from crossrank.ray import rerank_dataset                           # doctest: +SKIP
>>> ds = ray.data.read_parquet("pairs.parquet")                        # doctest: +SKIP
>>> rerank_dataset(ds, model="BAAI/bge-reranker-base", num_actors=4).write_parquet("out/")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from crossrank.ray.extra import RAY_INSTALL

# This package is named like the real ``ray``; every module in it imports ``ray`` absolutely
# (``from __future__ import annotations`` + ``import ray``), which always means the top-level one.
__all__ = ["rerank_dataset", "serve_deployment", "RAY_INSTALL"]


def __getattr__(name: str) -> Any:
    # Lazy: `import crossrank.ray` works without Ray; using a function says how to install it.
    if name == "rerank_dataset":
        from crossrank.ray.dataset import rerank_dataset

        return rerank_dataset
    if name == "serve_deployment":
        from crossrank.ray.deployment import serve_deployment

        return serve_deployment
    raise AttributeError(f"module 'crossrank.ray' has no attribute {name!r}")
