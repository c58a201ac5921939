"""The old home of what the wrappers share; its names keep working from here.

The source rule is :mod:`crossrank.sources`, the remote scorer :mod:`crossrank.client.remote`,
safe copies and rank options :mod:`crossrank.integration`. Nothing here imports torch.

>>> from crossrank.sharing import resolve_reranker
>>> resolve_reranker(base_url="http://127.0.0.1:8080").info()["base_url"]
'http://127.0.0.1:8080'
"""

from __future__ import annotations

from typing import Any

from .client.remote import API_KEY_ENV, RemoteReranker, RemoteRerankError
from .integration import copy_shareable, rank_options
from .sources import LOAD_OPTIONS, check_sources, resolve_reranker, split_reranker_kwargs

__all__ = ["API_KEY_ENV", "LOAD_OPTIONS", "RemoteReranker", "RemoteRerankError", "check_sources"]
__all__ += ["copy_shareable", "dtype_name", "rank_options", "resolve_reranker"]
__all__ += ["split_reranker_kwargs"]


def dtype_name(reranker: Any) -> str:
    """The precision a Reranker scores in, as a string (``reranker.info()["dtype"]``).

    >>> dtype_name(Reranker("BAAI/bge-reranker-base", dtype="bfloat16"))  # doctest: +SKIP
    'bfloat16'
    """
    from .settings import dtype_name as name_of

    return name_of(reranker.dtype)
