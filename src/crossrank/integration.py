"""What every framework wrapper shares besides the source rule: its options, safe copies, checks.

The LangChain compressor and the LlamaIndex postprocessor only translate their objects to texts
and back; everything else lives here once: the table of their options (:data:`OPTIONS`, turned
into pydantic fields by :func:`pydantic_fields`), ``rank``'s options from those fields
(:func:`rank_options`), copies that never touch the caller's objects (:func:`copy_shareable`,
:func:`copy_model`) and the check of what was passed in (:func:`as_items`). Which scorer to use
is :mod:`crossrank.sources`. Nothing here imports torch; pydantic only inside
:func:`pydantic_fields`, which only pydantic-based wrappers call.

Example:
    >>> from crossrank.integration import copy_shareable
    >>> import threading
    >>> meta = {"tags": ["a"], "lock": threading.Lock()}
    >>> copied = copy_shareable(meta)
    >>> copied["tags"] is meta["tags"], copied["lock"] is meta["lock"]
    (False, True)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Literal, Optional, Tuple, TypeVar

from .loading import DEFAULT_MODEL
from .scorer import Scorer
from .settings import model_options

T = TypeVar("T")


@dataclass(frozen=True)
class Option:
    """One wrapper option: its type, default, help (``{items}``: "documents", "nodes", ...) and
    pydantic constraints. ``frozen``: it chooses the model, so assigning it later is an error."""

    annotation: Any
    default: Any
    description: str
    constraints: Dict[str, Any] = field(default_factory=dict)
    frozen: bool = False
    exclude: bool = False  # never serialized (a live object, a secret)
    secret: bool = False  # shown and dumped masked (pydantic's SecretStr)


def _load_help(name: str) -> str:
    """A load option's help from :func:`crossrank.settings.model_options`, for a wrapper field."""
    text = next(option.help for option in model_options() if option.name == name)
    return f"{text}; None: the default. It chooses the model, so it is frozen."


OPTIONS: Dict[str, Option] = {
    "model": Option(
        Optional[str],
        None,
        f"Hub id or local checkpoint directory of the cross-encoder (default {DEFAULT_MODEL!r}; "
        "after construction, the model in use); with base_url, the model name sent to the "
        "server, if any. Give at most one of model, reranker and base_url.",
        frozen=True,
    ),
    "reranker": Option(
        Optional[Scorer],
        None,
        "A built scorer to share instead of loading model: a crossrank.Reranker (or a "
        "RemoteReranker). After construction it holds the one in use; it is never serialized.",
        frozen=True,
        exclude=True,
    ),
    "reranker_kwargs": Option(
        Optional[Dict[str, Any]],
        None,
        "Any crossrank.Reranker option for the model loaded from model: backend, quantize, "
        "long_documents, cache_size, ...; load options given here (dtype, device, max_length, "
        "use_fp16) move to their own fields.",
        frozen=True,
    ),
    # The load options: their help is the one option table's (crossrank.settings).
    "max_length": Option(Optional[int], None, _load_help("max_length"), {"ge": 16}, True),
    "device": Option(Optional[str], None, _load_help("device"), frozen=True),
    "use_fp16": Option(Optional[bool], None, _load_help("use_fp16"), frozen=True),
    "dtype": Option(Optional[str], None, _load_help("dtype"), frozen=True),
    "top_n": Option(
        Optional[int], 3, "{Items} to return, best first (0: none); None keeps all.", {"ge": 0}
    ),
    "score_threshold": Option(
        Optional[float],
        None,
        "Drop {items} whose normalized (sigmoid) score is below this, before top_n; None keeps "
        "them all.",
        {"ge": 0.0, "le": 1.0},
    ),
    "min_keep": Option(
        int,
        0,
        "Keep at least this many {items} (the best) whatever score_threshold drops; top_n still "
        "caps. 0 lets the threshold drop every one.",
        {"ge": 0},
    ),
    "batch_size": Option(
        Optional[int],
        None,
        "Pairs per batch for the longest pairs; None uses the Reranker's own (32). Not used "
        "with base_url (the server batches).",
        {"ge": 1},
    ),
    "fusion": Option(
        Optional[Literal["minmax", "rrf"]],
        None,
        'Fuse with the retriever\'s score: "minmax" (weighted min-max) or "rrf" (reciprocal-'
        "rank fusion); None ranks on the reranker's score alone.",
    ),
    "fusion_weight": Option(
        float,
        0.5,
        "With fusion: the weight of the retriever's score (0: the reranker's order, 1: the "
        "retriever's).",
        {"ge": 0.0, "le": 1.0},
    ),
    "base_url": Option(
        Optional[str],
        None,
        "URL of a crossrank server (`crossrank serve`) to score on instead of loading a model: "
        "its POST {{base_url}}/v1/rerank is called.",
        frozen=True,
    ),
    "api_key": Option(
        Optional[str],
        None,
        "The server's API key (sent as a Bearer token); default: the CROSSRANK_API_KEY "
        "environment variable. Never serialized.",
        frozen=True,
        exclude=True,
        secret=True,
    ),
    "timeout": Option(
        float, 60.0, "Seconds to wait for the server's answer.", {"gt": 0}, frozen=True
    ),
}
# The groups a wrapper picks from: where scores come from, and how results are selected.
SOURCE_OPTIONS = ("model", "reranker_kwargs", "max_length", "device", "use_fp16", "dtype")
REMOTE_OPTIONS = ("base_url", "api_key", "timeout")
RANK_OPTIONS = ("top_n", "score_threshold", "min_keep", "batch_size", "fusion", "fusion_weight")
GROUPS = {"reranker": ("reranker",), "source": SOURCE_OPTIONS, "remote": REMOTE_OPTIONS}
GROUPS["rank"] = RANK_OPTIONS


def pydantic_fields(names: Iterable[str], items: str = "documents") -> Dict[str, Tuple[Any, Any]]:
    """``{name: (type, Field(...))}`` for ``pydantic.create_model``, from :data:`OPTIONS`.

    >>> from pydantic import create_model
    >>> Fields = create_model("Fields", **pydantic_fields(["top_n"], items="nodes"))
    >>> Fields.model_fields["top_n"].description
    'Nodes to return, best first (0: none); None keeps all.'
    """
    from pydantic import Field, SecretStr

    fields = {}
    for name in names:
        option = OPTIONS[name]
        text = option.description.format(items=items, Items=items.capitalize())
        annotation = Optional[SecretStr] if option.secret else option.annotation
        info = Field(
            default=option.default,
            description=text,
            frozen=option.frozen or None,
            exclude=option.exclude or None,
            **option.constraints,
        )
        fields[name] = (annotation, info)
    return fields


def options_model(
    name: str, base: Any = None, groups: Iterable[str] = (), items: str = "documents", **config: Any
) -> Any:
    """A pydantic model class with the options of ``groups`` (:data:`GROUPS`, or single option
    names) as fields, to
    derive a wrapper from: on ``base`` (a pydantic model, e.g. the framework's base class), or
    with model ``config`` (``arbitrary_types_allowed=True``, ...).

    >>> Fields = options_model("Fields", groups=["rank"], items="nodes")
    >>> Fields().top_n, Fields.model_fields["top_n"].description
    (3, 'Nodes to return, best first (0: none); None keeps all.')
    """
    from pydantic import ConfigDict, create_model

    fields = pydantic_fields(
        [name for group in groups for name in GROUPS.get(group, [group])], items
    )
    if base is None:
        return create_model(name, __config__=ConfigDict(**config), **fields)
    return create_model(name, __base__=base, **fields)


def rank_options(wrapper: Any, first_stage: Callable[[int], float], count: int) -> Dict[str, Any]:
    """``Scorer.rank``'s keyword options from a wrapper's fields (top_n, score_threshold,
    min_keep, batch_size, fusion, fusion_weight); with fusion, ``first_stage(i)`` gives item
    ``i``'s retriever score.

    >>> from types import SimpleNamespace as Wrapper
    >>> rank_options(Wrapper(top_n=2, score_threshold=None, min_keep=0, batch_size=None,
    ...                      fusion=None, fusion_weight=0.5), None, 3)
    {'top_k': 2, 'threshold': None, 'min_keep': 0, 'batch_size': None}
    """
    options = {
        "top_k": wrapper.top_n,
        "threshold": wrapper.score_threshold,
        "min_keep": wrapper.min_keep,
        "batch_size": wrapper.batch_size,
    }
    if wrapper.fusion is not None:
        options.update(
            first_stage_scores=[first_stage(i) for i in range(count)],
            fusion=wrapper.fusion,
            fusion_weight=wrapper.fusion_weight,
        )
    return options


def as_items(
    values: Any, name: str, kind: type, plural: str, singular: str, hint: Optional[Callable] = None
) -> List[Any]:
    """``values`` as a list of ``kind``, or a ``TypeError`` naming ``name`` (and the position).

    A list is returned as is (never modified); any other iterable is read once, here, so a
    generator is never read in a worker thread or twice. ``hint(item)`` ends the message about a
    wrong item.

    >>> as_items(None, "nodes", int, "numbers", "a number")
    Traceback (most recent call last):
    TypeError: nodes must be an iterable of numbers, got NoneType
    """
    # Strings are iterable too, and a dict iterates its keys: refuse both by name.
    if values is None or isinstance(values, (str, bytes, dict, kind)):
        raise TypeError(f"{name} must be an iterable of {plural}, got {type(values).__name__}")
    try:
        items = values if isinstance(values, list) else list(values)
    except TypeError:
        raise TypeError(
            f"{name} must be an iterable of {plural}, got {type(values).__name__}"
        ) from None
    for i, item in enumerate(items):
        if not isinstance(item, kind):
            more = hint(item) if hint else ""
            raise TypeError(f"{name}[{i}] is {type(item).__name__}, expected {singular}{more}")
    return items


def copy_shareable(value: T) -> T:
    """Deep-copy ``value``; what cannot be copied (a lock, an open file, a client) is shared.

    Dicts, lists, tuples and sets are rebuilt around such an object, so everything else in them
    is still a private copy.

    >>> copy_shareable({"a": [1]}) == {"a": [1]}
    True
    """
    try:
        return copy.deepcopy(value)
    except Exception:  # deepcopy raises whatever __reduce_ex__ raises: TypeError, PicklingError
        pass
    if isinstance(value, dict):
        return {key: copy_shareable(item) for key, item in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [copy_shareable(item) for item in value]  # type: ignore[return-value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(copy_shareable(item) for item in value)  # type: ignore[return-value]
    if isinstance(value, (set, frozenset)):
        return type(value)(value)  # type: ignore[return-value]
    return value


def copy_model(model: T) -> T:
    """A deep copy of a pydantic object (a Document, a node): later steps may edit it and none of
    that may reach the caller's; values that cannot be copied (a lock in the metadata) are shared.

    >>> from pydantic import BaseModel
    >>> class Doc(BaseModel):
    ...     metadata: dict
    >>> doc = Doc(metadata={"tags": ["a"]})
    >>> copy_model(doc).metadata["tags"] is doc.metadata["tags"]
    False
    """
    try:
        return model.model_copy(deep=True)  # type: ignore[attr-defined]
    except Exception:  # deepcopy raises whatever __reduce_ex__ raises
        update = {name: copy_shareable(value) for name, value in vars(model).items()}
        return model.model_copy(update=update)  # type: ignore[attr-defined]
