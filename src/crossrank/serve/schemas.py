"""Request bodies of the three APIs (Cohere v1/Jina, Cohere v2, TEI) and their response shapes.

Field names are the originals', so unmodified clients work; unknown fields are ignored (clients add
fields such as Cohere's ``priority``). crossrank's own extensions on every route: ``score_threshold``
(drop results scoring below it, applied before ``top_n``) and ``min_keep`` (a threshold never
leaves fewer than this many results).
"""

from __future__ import annotations

import uuid
from typing import Any, Dict, List, Literal, Optional, Sequence, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from ..results import RankedDocument, Selection


class TextDocument(BaseModel):
    """A document given as an object, as Cohere v1 and Jina allow: ``{"text": ...}``."""

    model_config = ConfigDict(extra="ignore")
    text: str


def _check_text(text: str, field: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # lone surrogates ("\ud800") survive JSON decoding but no tokenizer can take them
        raise ValueError(f"{field} is not valid Unicode (it holds a lone surrogate)") from None
    return text


class _Common(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str = Field(description="the search query")
    model: Optional[str] = Field(
        None, description="the served model to score with (several served); ignored with one"
    )
    score_threshold: Optional[float] = Field(
        None, description="crossrank: drop results scoring below this (before top_n)"
    )
    min_keep: Optional[StrictInt] = Field(
        None, ge=0, description="crossrank: the threshold never leaves fewer results than this"
    )

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, query: str) -> str:
        if not query.strip():
            raise ValueError("query is empty; pass the question to rank the documents for")
        return _check_text(query, "query")


class CohereV1Request(_Common):
    """``POST /v1/rerank``: Cohere v1 and Jina."""

    documents: List[Union[str, TextDocument]]
    top_n: Optional[StrictInt] = Field(None, ge=0)
    return_documents: StrictBool = False

    def texts(self) -> List[str]:
        return _texts(self.documents)


class CohereV2Request(_Common):
    """``POST /v2/rerank``: Cohere v2."""

    documents: List[Union[str, TextDocument]]
    top_n: Optional[StrictInt] = Field(None, ge=0)
    max_tokens_per_doc: Optional[StrictInt] = Field(None, ge=1)

    def texts(self) -> List[str]:
        return _texts(self.documents)


class TEIRequest(_Common):
    """``POST /rerank``: Hugging Face text-embeddings-inference."""

    texts: List[str]
    raw_scores: StrictBool = False
    return_text: StrictBool = False
    # false: a pair over max_length is a 422 naming its tokens; left out: true (TEI --auto-truncate)
    truncate: Optional[StrictBool] = None
    truncation_direction: Literal["Right", "right"] = "Right"
    top_n: Optional[StrictInt] = Field(None, ge=0)  # crossrank extension; TEI returns all


def _texts(documents: Sequence[Union[str, TextDocument]]) -> List[str]:
    return [d if isinstance(d, str) else d.text for d in documents]


def check_texts(texts: Sequence[str], field: str) -> None:
    """Raise ValueError naming ``field[i]`` for a text no tokenizer can take."""
    for i, text in enumerate(texts):
        _check_text(text, f"{field}[{i}]")


def selection(request: _Common, normalize: bool = True) -> Selection:
    """The request's selection, applied once to the raw logits the batcher returns.

    Scores normalized (sigmoid, or the served calibration) unless ``normalize`` is false (TEI's
    ``raw_scores``); ties on the score follow the raw logit, then input order;
    ``score_threshold`` drops results below it but never below ``min_keep``; then ``top_n``.
    A ``ValueError`` names a bad option before anything is scored.

    >>> ranked = selection(CohereV1Request(query="q", documents=[])).apply([-1.4, 2.2], ["a", "b"])
    >>> [hit.index for hit in ranked]
    [1, 0]
    """
    return Selection(
        top_k=getattr(request, "top_n", None),
        threshold=request.score_threshold,
        min_keep=request.min_keep or 0,
        normalize=normalize,
    )


def new_id() -> str:
    return str(uuid.uuid4())


def cohere_v1_response(
    ranked: Sequence[RankedDocument], request: CohereV1Request, model: str, tokens: int
) -> Dict[str, Any]:
    """Cohere v1 body, with Jina's ``model`` and ``usage`` beside Cohere's ``meta``."""
    results = []
    for hit in ranked:
        item: Dict[str, Any] = {"index": hit.index, "relevance_score": hit.score}
        if request.return_documents:
            item["document"] = {"text": hit.text}
        results.append(item)
    return {
        "id": new_id(),
        "results": results,
        "model": model,
        "meta": {"api_version": {"version": "1"}, "billed_units": {"search_units": 1}},
        "usage": {"total_tokens": tokens},
    }


def cohere_v2_response(ranked: Sequence[RankedDocument], tokens: int) -> Dict[str, Any]:
    """Cohere v2 body."""
    return {
        "id": new_id(),
        "results": [{"index": hit.index, "relevance_score": hit.score} for hit in ranked],
        "meta": {
            "api_version": {"version": "2"},
            "billed_units": {"search_units": 1},
            "tokens": {"input_tokens": tokens, "output_tokens": 0},
        },
    }


def tei_response(ranked: Sequence[RankedDocument], return_text: bool) -> List[Dict[str, Any]]:
    """TEI body: a bare array."""
    if return_text:
        return [{"index": hit.index, "score": hit.score, "text": hit.text} for hit in ranked]
    return [{"index": hit.index, "score": hit.score} for hit in ranked]
