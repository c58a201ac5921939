"""Node handling for ``CrossRankRerank``: what counts as nodes, a query, and a safe node copy."""

from __future__ import annotations

from typing import Iterable, List, Optional

from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle

from crossrank.sharing import copy_shareable


def copy_node(node: BaseNode) -> BaseNode:
    """A deep copy of ``node``; metadata values that cannot be copied are shared.

    >>> copy_node(TextNode(text="a", metadata={"lock": threading.Lock()}))  # doctest: +SKIP
    """
    # A deep copy: later postprocessors may edit the node (text, metadata, exclusion lists) and
    # none of that may reach the caller's node. What cannot be copied (a lock, an open file in the
    # metadata) is shared instead of failing the whole rerank.
    try:
        return node.model_copy(deep=True)
    except Exception:  # deepcopy raises whatever __reduce_ex__ raises
        return node.model_copy(
            update={name: copy_shareable(value) for name, value in node.__dict__.items()}
        )


def as_nodes(nodes: Iterable[NodeWithScore]) -> List[NodeWithScore]:
    """``nodes`` as a list of ``NodeWithScore``, or a ``TypeError`` naming ``nodes``.

    >>> as_nodes(NodeWithScore(node=n) for n in text_nodes)  # doctest: +SKIP
    """
    # Materialised before any event: ReRankStartEvent would otherwise consume a generator.
    if nodes is None or isinstance(nodes, (str, bytes, dict, NodeWithScore, BaseNode)):
        raise TypeError(f"nodes must be an iterable of NodeWithScore, got {type(nodes).__name__}")
    try:
        # A list is passed on as is (never modified): events then carry the caller's own list.
        items = nodes if isinstance(nodes, list) else list(nodes)
    except TypeError:
        raise TypeError(
            f"nodes must be an iterable of NodeWithScore, got {type(nodes).__name__}"
        ) from None
    for i, item in enumerate(items):
        if not isinstance(item, NodeWithScore):
            hint = " (wrap it: NodeWithScore(node=node))" if isinstance(item, BaseNode) else ""
            raise TypeError(f"nodes[{i}] is {type(item).__name__}, expected NodeWithScore{hint}")
    return items


def require_query(query_bundle: Optional[QueryBundle]) -> QueryBundle:
    """``query_bundle``, or a ``ValueError`` saying how to pass the query."""
    if query_bundle is None:
        raise ValueError(
            "CrossRankRerank needs the query to rerank for: pass query_bundle=QueryBundle(...) "
            "or query_str='...' to postprocess_nodes"
        )
    return query_bundle
