"""The interface every scorer shares: a :class:`~crossrank.Reranker` in this process, or a
:class:`~crossrank.client.remote.RemoteReranker` asking a running ``crossrank serve``.

The LangChain and LlamaIndex integrations (and anything built on crossrank) call only these
methods, so they never ask which scorer they hold: the same arguments are accepted and checked
with the same words, and the same :class:`~crossrank.RankedDocument` list comes back, best first.
This module imports no torch, so checking ``isinstance(obj, Scorer)`` costs nothing.

Example:
    >>> from crossrank.scorer import Scorer
    >>> from crossrank.client.remote import RemoteReranker
    >>> isinstance(RemoteReranker("http://127.0.0.1:8080"), Scorer)  # no request is sent
    True
    >>> isinstance("BAAI/bge-reranker-base", Scorer)
    False
"""

from __future__ import annotations

import inspect
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    List,
    Optional,
    Protocol,
    Sequence,
    TypedDict,
    Union,
    get_type_hints,
    runtime_checkable,
)

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Unpack

    from .results import RankedDocument


class RankOptions(TypedDict, total=False):
    """The options of :meth:`Scorer.rank`, in order after ``query`` and ``documents``; their
    defaults are :data:`RANK_DEFAULTS`."""

    top_k: Optional[int]  # keep the best k; 0 none, None all
    threshold: Optional[float]  # drop scores below it, on the score as returned
    normalize: bool  # scores in (0, 1); False gives raw logits
    batch_size: Optional[int]  # pairs per forward pass; a server chooses its own
    min_keep: int  # the threshold never leaves fewer
    first_stage_scores: Optional[Sequence[float]]  # the retriever's score of each document
    fusion: str  # "minmax" or "rrf"
    fusion_weight: float  # the retriever's weight in the fusion


RANK_DEFAULTS: Dict[str, Any] = dict(
    top_k=None, threshold=None, normalize=True, batch_size=None, min_keep=0,
    first_stage_scores=None, fusion="minmax", fusion_weight=0.5,
)  # fmt: skip


@runtime_checkable
class Scorer(Protocol):
    """Rerank documents for a query, synchronously or awaited, with the same options.

    ``rank``'s keyword options are :class:`RankOptions`, accepted and checked alike by every
    scorer; ``arank`` takes the same arguments and does not block the event loop.
    ``compute_score`` scores pairs in input order (FlagReranker's call); ``info`` says what
    scores (JSON-ready).

    >>> async def best(scorer: Scorer, query, docs):
    ...     return (await scorer.arank(query, docs, top_k=1))[0]
    """

    def rank(
        self, query: str, documents: Sequence[str], **options: Unpack[RankOptions]
    ) -> List[RankedDocument]:
        """``documents`` reranked for ``query``, best first, selected as the options say."""
        ...

    async def arank(
        self, query: str, documents: Sequence[str], *args: Any, **options: Any
    ) -> List[RankedDocument]:
        """:meth:`rank` with the same arguments, awaited without blocking the event loop."""
        ...

    def compute_score(
        self, sentence_pairs: Any, normalize: bool = False, batch_size: Optional[int] = None
    ) -> Union[float, List[float]]:
        """Scores of one ``[query, passage]`` pair (a float) or of a list of pairs (in input
        order): raw logits, or their sigmoid with ``normalize=True``."""
        ...

    def info(self) -> Dict[str, Any]:
        """What scores: at least ``"model"`` (a local scorer adds ``device``, ``dtype``,
        ``max_length``, ...; a remote one ``base_url`` and ``timeout``)."""
        ...


def _rank_signature() -> inspect.Signature:
    """``rank(self, query, documents, top_k=None, ...)`` spelled out from :class:`RankOptions`,
    so that ``help()``, IDEs and positional calls see every option where a scorer forwards
    ``**options`` (the remote scorer binds its arguments to this signature)."""
    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    head = [
        inspect.Parameter("self", positional),
        inspect.Parameter("query", positional, annotation=str),
        inspect.Parameter("documents", positional, annotation=Sequence[str]),
    ]
    types = get_type_hints(RankOptions)
    options = [
        inspect.Parameter(name, positional, default=default, annotation=types[name])
        for name, default in RANK_DEFAULTS.items()
    ]
    return inspect.Signature(head + options, return_annotation="List[RankedDocument]")


Scorer.rank.__signature__ = _rank_signature()  # type: ignore[attr-defined]
