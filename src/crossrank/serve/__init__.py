"""``crossrank serve``: a reranking HTTP service speaking the Cohere v1/v2, Jina and TEI APIs.

Needs the ``serve`` extra: ``pip install 'crossrank[serve]'``.

>>> from crossrank import Reranker
>>> from crossrank.serve import ServeSettings, create_app
>>> app = create_app(Reranker("BAAI/bge-reranker-base"), ServeSettings())  # doctest: +SKIP
"""

from .settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]


def __getattr__(name: str):
    if name == "create_app":  # FastAPI is imported only when the app is asked for
        from .app import create_app

        return create_app
    raise AttributeError(name)
