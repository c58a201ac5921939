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

from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    List,
    Optional,
    Protocol,
    Sequence,
    Union,
    runtime_checkable,
)

if TYPE_CHECKING:  # pragma: no cover
    from .results import RankedDocument


@runtime_checkable
class Scorer(Protocol):
    """Rerank documents for a query, synchronously or awaited, with the same options.

    ``rank``'s options, in this order: ``top_k`` (keep the best k; ``0`` none, ``None`` all),
    ``threshold`` (drop scores below it, on the score as returned), ``normalize`` (scores in
    (0, 1); ``False`` gives raw logits), ``batch_size`` (pairs per forward pass; a server
    chooses its own), ``min_keep`` (the threshold never leaves fewer), ``first_stage_scores``
    (the retriever's score of each document, fused with ``fusion`` = ``"minmax"`` or ``"rrf"``,
    ``fusion_weight`` being the retriever's weight). ``arank`` takes the same arguments and does
    not block the event loop. ``compute_score`` scores pairs in input order (FlagReranker's
    call); ``info`` says what scores (JSON-ready).

    >>> async def best(scorer: Scorer, query, docs):
    ...     return (await scorer.arank(query, docs, top_k=1))[0]
    """

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: Optional[int] = None,
        threshold: Optional[float] = None,
        normalize: bool = True,
        batch_size: Optional[int] = None,
        min_keep: int = 0,
        first_stage_scores: Optional[Sequence[float]] = None,
        fusion: str = "minmax",
        fusion_weight: float = 0.5,
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
