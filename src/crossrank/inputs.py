"""Checks of what callers pass in: each error names the argument and says what to do.

One place for every check of a call's arguments (queries, documents, pairs, top_k, threshold,
min_keep, normalize, per-call lengths and batch sizes), so that ``rank``, ``rank_many``,
``compute_score``, the integrations and the server reject the same things with the same words.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Set
from typing import List, Optional, Sequence, Tuple

from .errors import ArgumentError

Pair = Tuple[str, str]


def check_text(text: object, name: str) -> str:
    """``text`` as a ``str``; ``TypeError``/``ValueError`` naming ``name`` otherwise.

    A lone surrogate (``"\\ud800"``, which ``json.loads`` makes from an escaped half of a UTF-16
    pair) is not text a tokenizer can read: it is refused with the argument's name.
    """
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            bad = text[error.start : error.end]
            raise ValueError(
                f"{name} holds {bad!r} at character {error.start}, a lone UTF-16 surrogate that "
                "is not valid Unicode text; clean it first, e.g. "
                "text.encode('utf-8', 'replace').decode('utf-8')"
            ) from None
    return text


def check_query(query: object, name: str = "query") -> str:
    if query is None or not isinstance(query, str):
        raise TypeError(f"{name} must be a non-empty str, got {type(query).__name__}")
    if not query.strip():
        raise ValueError(f"{name} is empty; pass the question or search text to rank documents for")
    return check_text(query, name)


def as_list(items: object, name: str, what: str) -> list:
    """Any ordered collection (list, tuple, generator, NumPy array, pandas Series, datasets column)
    as a list; strings, mappings and sets are refused because their order or items are not a
    list of ``what``."""
    if items is None or isinstance(items, (str, bytes)):
        raise TypeError(f"{name} must be a list of {what}, got {type(items).__name__}")
    if isinstance(items, (Mapping, Set)):
        raise TypeError(
            f"{name} must be an ordered list of {what}, got a {type(items).__name__} "
            "(a dict would rank its keys, a set has no order); pass list(...) in the order you mean"
        )
    if not isinstance(items, Iterable):
        raise TypeError(f"{name} must be a list of {what}, got {type(items).__name__}")
    return list(items)


def check_documents(documents: object, name: str = "documents") -> List[str]:
    texts = as_list(documents, name, "str (one entry per document)")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"{name}[{i}] is {type(text).__name__}, expected str; pass document texts "
                "(e.g. [d.page_content for d in docs])"
            )
        if not text.isascii():
            check_text(text, f"{name}[{i}]")
    return texts


def _is_pair(item: object) -> bool:
    if isinstance(item, (str, bytes, Mapping, Set)):
        return False
    try:
        return len(item) == 2 and all(isinstance(s, str) for s in item)  # type: ignore[arg-type]
    except TypeError:
        return False


def as_pairs(sentence_pairs: object) -> Tuple[bool, List[Pair]]:
    """``(single, pairs)``: one ``[query, passage]`` or any ordered collection of them.

    Lists, tuples, NumPy arrays, pandas Series and Hugging Face ``datasets`` columns all work.
    """
    name = "sentence_pairs"
    if sentence_pairs is None or isinstance(sentence_pairs, (str, bytes)):
        raise TypeError(
            f"{name} must be a [query, passage] pair or a list of such pairs, "
            f"got {type(sentence_pairs).__name__}"
        )
    items = as_list(sentence_pairs, name, "[query, passage] pairs")
    if not items:
        return False, []
    if isinstance(items[0], str):
        if not _is_pair(items):
            raise TypeError(
                f"{name} looks like one pair but is not two strings: pass "
                "[query, passage] or a list of [query, passage] pairs"
            )
        return True, [(check_text(items[0], f"{name}[0]"), check_text(items[1], f"{name}[1]"))]
    pairs = []
    for i, item in enumerate(items):
        if not _is_pair(item):
            raise TypeError(
                f"{name}[{i}] must be a [query, passage] pair of two str, got {item!r:.80}"
            )
        query, passage = item
        if not (query.isascii() and passage.isascii()):  # names are built only when needed
            check_text(query, f"{name}[{i}][0]")
            check_text(passage, f"{name}[{i}][1]")
        pairs.append((query, passage))
    return False, pairs


def check_count(
    value: object, name: str, minimum: int, hint: str = "", optional: bool = False
) -> Optional[int]:
    """An integer option (NumPy integers too, not bools) of at least ``minimum`` (or None if
    ``optional``); :class:`~crossrank.errors.ArgumentError` naming ``name`` otherwise."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentError(
            f"{name} must be an int >= {minimum}{' or None' if optional else ''}{hint}, "
            f"got {value!r:.40}"
        )
    if value < minimum:
        raise ArgumentError(f"{name} must be an int >= {minimum}{hint}, got {value}")
    return int(value)


def check_top_k(top_k: object, name: str = "top_k") -> Optional[int]:
    return check_count(top_k, name, 0, " (None keeps every document)", optional=True)


def check_min_keep(min_keep: object, name: str = "min_keep") -> int:
    if min_keep is None:
        return 0
    return check_count(min_keep, name, 0, " (0 lets a threshold drop every document)") or 0


def check_threshold(threshold: object, name: str = "threshold") -> Optional[float]:
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise ArgumentError(f"{name} must be a number or None, got {type(threshold).__name__}")
    value = float(threshold)
    if math.isnan(value):
        raise ArgumentError(f"{name} is NaN; pass a number (or None for no threshold)")
    return value


def check_normalize(normalize: object, name: str = "normalize") -> bool:
    # NumPy's bool_ is not a bool subclass; accept it, refuse strings and None that would
    # otherwise read as true/false by accident.
    kind = type(normalize)
    if isinstance(normalize, bool) or (
        kind.__module__ == "numpy" and kind.__name__ in ("bool_", "bool")
    ):
        return bool(normalize)
    raise ArgumentError(f"{name} must be True or False, got {normalize!r:.40}")


def check_batch_size(batch_size: object, name: str = "batch_size") -> Optional[int]:
    return check_count(batch_size, name, 1, optional=True)


def check_lengths(
    max_length: Optional[int], query_max_length: Optional[int]
) -> Tuple[Optional[int], Optional[int]]:
    """Per-call or constructor ``max_length`` (>= 16) and ``query_max_length`` (< max_length)."""
    max_length = check_count(max_length, "max_length", 16, optional=True)
    query_max_length = check_count(query_max_length, "query_max_length", 1, optional=True)
    if query_max_length is not None and max_length is not None and query_max_length >= max_length:
        raise ArgumentError(
            f"query_max_length={query_max_length} must be less than max_length={max_length}, so "
            "that the passage has room (default: 3/4 of max_length)"
        )
    return max_length, query_max_length


def sequence_of_queries(queries: object, documents_per_query: object) -> Tuple[list, list]:
    """``rank_many``'s arguments as two lists of equal length, each entry checked."""
    query_list = as_list(queries, "queries", "str")
    documents_list = as_list(documents_per_query, "documents_per_query", "lists of str")
    if len(query_list) != len(documents_list):
        raise ValueError(
            f"queries has {len(query_list)} entries but documents_per_query has "
            f"{len(documents_list)}; pass one list of documents per query"
        )
    checked_queries = [check_query(q, f"queries[{i}]") for i, q in enumerate(query_list)]
    checked_documents = [
        check_documents(d, f"documents_per_query[{i}]") for i, d in enumerate(documents_list)
    ]
    return checked_queries, checked_documents


def check_passage_token_limits(limits: object, queries: int) -> Optional[List[Optional[int]]]:
    """``score_many``'s per-query passage token caps: None, or one int >= 1 (or None) per query."""
    if limits is None:
        return None
    checked = as_list(limits, "passage_token_limits", "int or None")
    if len(checked) != queries:
        raise ArgumentError(
            f"passage_token_limits has {len(checked)} entries for {queries} queries; pass one "
            "(an int, or None for no cap) per query"
        )
    return [
        check_count(limit, f"passage_token_limits[{i}]", 1, optional=True)
        for i, limit in enumerate(checked)
    ]


# ---------------------------------------------------------------- fusion with a first stage

FUSION_METHODS = ("minmax", "rrf")


def check_fusion(fusion: object, name: str = "fusion") -> str:
    """``"minmax"`` or ``"rrf"`` (see :mod:`crossrank.fusion`)."""
    if not isinstance(fusion, str) or fusion not in FUSION_METHODS:
        raise ArgumentError(
            f"{name} must be one of {', '.join(map(repr, FUSION_METHODS))}, got {fusion!r:.40}"
        )
    return fusion


def check_fusion_weight(weight: object, name: str = "fusion_weight") -> float:
    """The first-stage score's weight: a number in [0, 1]."""
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
        raise ArgumentError(f"{name} must be a number in [0, 1], got {type(weight).__name__}")
    value = float(weight)
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise ArgumentError(
            f"{name} must be in [0, 1] (the weight of the first-stage score; 0 keeps the "
            f"reranker's order, 1 the retriever's), got {weight!r}"
        )
    return value


def check_score(value: object, name: str) -> float:
    """One finite number (a retriever's score); :class:`ArgumentError` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentError(f"{name} must be a number, got {type(value).__name__}")
    score = float(value)
    if not math.isfinite(score):
        raise ArgumentError(f"{name} is {score}; pass finite scores")
    return score


def _as_argument_list(items: object, name: str, what: str) -> list:
    try:
        return as_list(items, name, what)
    except TypeError as error:  # as ArgumentError, like every other fusion check
        raise ArgumentError(str(error)) from None


def check_first_stage_scores(
    scores: object, count: int, name: str = "first_stage_scores"
) -> List[float]:
    """One finite score per document (``count`` of them), as a new list of floats."""
    items = _as_argument_list(scores, name, "numbers (one score per document)")
    if len(items) != count:
        raise ArgumentError(
            f"{name} has {len(items)} scores for {count} documents; pass the retriever's score "
            "of each document, in the documents' order"
        )
    return [check_score(value, f"{name}[{i}]") for i, value in enumerate(items)]


def check_first_stage_lists(
    scores: object, counts: Sequence[int], name: str = "first_stage_scores"
) -> List[List[float]]:
    """``rank_many``'s first-stage scores: one list per query, each as long as its documents."""
    lists = _as_argument_list(scores, name, "lists of numbers (one list per query)")
    if len(lists) != len(counts):
        raise ArgumentError(
            f"{name} has {len(lists)} lists for {len(counts)} queries; pass one list of scores "
            "per query"
        )
    return [
        check_first_stage_scores(own, count, f"{name}[{i}]")
        for i, (own, count) in enumerate(zip(lists, counts))
    ]


__all__: Sequence[str] = [
    "as_pairs",
    "check_batch_size",
    "check_documents",
    "check_first_stage_lists",
    "check_first_stage_scores",
    "check_fusion",
    "check_fusion_weight",
    "check_lengths",
    "check_min_keep",
    "check_normalize",
    "check_query",
    "check_score",
    "check_threshold",
    "check_top_k",
    "sequence_of_queries",
]
