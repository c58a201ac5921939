"""Where a wrapper's scores come from: the one ``model= | reranker= | base_url=`` rule.

Every wrapper (LangChain, LlamaIndex, your own) takes exactly one of

- ``model=`` (plus its load options and ``reranker_kwargs``): a :class:`~crossrank.Reranker` is
  loaded here;
- ``reranker=``: a scorer already built (a ``Reranker``, a ``RemoteReranker``, any
  :class:`~crossrank.scorer.Scorer`) is shared as is;
- ``base_url=`` (plus ``api_key``, ``timeout``): a
  :class:`~crossrank.client.remote.RemoteReranker` asks a running ``crossrank serve``; ``model=``
  may name the served model.

No pydantic and no torch here: ``Reranker`` (and with it torch) is imported only when a model is
loaded, so a remote-only wrapper never imports torch.

Example:
    >>> from crossrank.sources import resolve_reranker
    >>> remote = resolve_reranker(base_url="http://127.0.0.1:8080")  # loads nothing
    >>> remote.info()["base_url"]
    'http://127.0.0.1:8080'
    >>> rr = resolve_reranker("BAAI/bge-reranker-base", reranker_kwargs={"backend": "onnx"})  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import os
from typing import Any, Dict, Mapping, NamedTuple, Optional, Tuple, Union

from .scorer import Scorer
from .settings import model_options

# Load options that the wrappers expose as fields of their own; given in ``reranker_kwargs`` they
# are moved to those fields (split_reranker_kwargs), so a wrapper's dump holds each option once.
LOAD_OPTIONS = ("max_length", "device", "use_fp16", "dtype")
# The fields that describe a scorer in use, so that a wrapper's dump rebuilds an equivalent one.
LOCAL_DESCRIPTION = ("model", "device", "max_length", "dtype")
REMOTE_DESCRIPTION = ("base_url", "model", "timeout")


def reranker_options() -> Tuple[str, ...]:
    """Every keyword ``Reranker`` accepts: the one option table's names (no torch import).

    >>> reranker_options()[:4]
    ('model', 'device', 'use_fp16', 'dtype')
    """
    return tuple(option.name for option in model_options())


def check_sources(
    model: Any = None,
    reranker: Any = None,
    reranker_kwargs: Any = None,
    base_url: Any = None,
    api_key: Any = None,
    load_options: Optional[Mapping[str, Any]] = None,
) -> None:
    """Raise a clear error unless the arguments name exactly one source of scores.

    ``load_options`` holds the load options the caller gave (``None`` counts as not given).

    >>> check_sources(model="m", base_url="http://127.0.0.1:8080")
    >>> check_sources(reranker="m")
    Traceback (most recent call last):
    TypeError: reranker must be a crossrank.Reranker, got str (or another crossrank.scorer.Scorer)
    """
    given = [name for name, value in (load_options or {}).items() if value is not None]
    _check_kwargs_type(reranker_kwargs)
    if reranker_kwargs:
        given.append("reranker_kwargs")
    if reranker is not None:
        if not isinstance(reranker, Scorer):  # a Protocol check: no torch import
            raise TypeError(
                f"reranker must be a crossrank.Reranker, got {type(reranker).__name__} "
                "(or another crossrank.scorer.Scorer)"
            )
        if model is not None:
            raise ValueError(
                "pass either model= (to load a cross-encoder) or reranker= (to share a loaded "
                "crossrank.Reranker), not both"
            )
        if base_url is not None:
            raise ValueError(
                "pass either reranker= (score in this process) or base_url= (score on a crossrank "
                "server), not both"
            )
        if given:
            raise ValueError(
                f"{', '.join(given)} configure loading a model and cannot be combined with "
                "reranker=; set them on the Reranker you pass"
            )
    elif base_url is not None:
        from .client.remote import check_base_url

        check_base_url(base_url)
        if given:
            raise ValueError(
                f"{', '.join(given)} configure loading a model and cannot be combined with "
                "base_url=: the server loads its own model (see `crossrank serve --help`)"
            )
    if api_key is not None and base_url is None:
        raise ValueError("api_key is only used with base_url= (a crossrank server); drop it")
    for key in reranker_kwargs or {}:
        _check_reranker_option(key)


def _check_kwargs_type(reranker_kwargs: Any) -> None:
    if reranker_kwargs is not None and not isinstance(reranker_kwargs, Mapping):
        raise TypeError(
            f"reranker_kwargs must be a dict of Reranker options, got {type(reranker_kwargs).__name__}"
        )


def _check_reranker_option(key: Any) -> None:
    if key == "model":
        raise ValueError(
            "reranker_kwargs['model']: pass the model as model=, not in reranker_kwargs"
        )
    if key not in reranker_options():
        options = ", ".join(n for n in reranker_options() if n not in ("model", *LOAD_OPTIONS))
        raise ValueError(f"reranker_kwargs[{key!r}] is not a Reranker option; options: {options}")


def split_reranker_kwargs(
    reranker_kwargs: Any, load_options: Mapping[str, Any]
) -> Tuple[Any, Dict[str, Any]]:
    """Move the load options found in ``reranker_kwargs`` (``dtype``, ``device``, ...) to
    ``load_options``, so a wrapper keeps each option in one field and its dump rebuilds it.

    The same option given both ways with different values is a ``ValueError`` naming both.

    >>> split_reranker_kwargs({"dtype": "bfloat16", "cache_size": 8}, {"device": "cpu"})
    ({'cache_size': 8}, {'device': 'cpu', 'dtype': 'bfloat16'})
    """
    merged = dict(load_options)
    if not isinstance(reranker_kwargs, Mapping):
        return reranker_kwargs, merged  # None, or a wrong type that check_sources reports
    rest = {}
    for key, value in reranker_kwargs.items():
        if key not in LOAD_OPTIONS:
            rest[key] = value
        elif merged.get(key) is not None and merged[key] != value:
            raise ValueError(
                f"{key} is given twice, as {key}={merged[key]!r} and as "
                f"reranker_kwargs[{key!r}]={value!r}; give it once"
            )
        else:
            merged[key] = value
    return rest, merged


def resolve_reranker(
    model: Union[str, os.PathLike, None] = None,
    reranker: Optional[Scorer] = None,
    reranker_kwargs: Optional[Mapping[str, Any]] = None,
    *,
    base_url: Optional[str] = None,
    api_key: Optional[str] = None,
    timeout: float = 60.0,
    **load_options: Any,
) -> Scorer:
    """The scorer a wrapper uses: ``reranker`` as is, a ``RemoteReranker``, or a new Reranker.

    Args:
        model: hub id or local directory to load (default ``crossrank.DEFAULT_MODEL``); with
            ``base_url``, the model name sent to the server.
        reranker: a built scorer to share.
        reranker_kwargs: any ``Reranker`` option (``backend``, ``quantize``, ``cache_size``,
            ``long_documents``, ``dtype``, ...), as LlamaIndex's ``cross_encoder_kwargs``.
        base_url, api_key, timeout: score on a crossrank server instead (``api_key`` defaults to
            the ``CROSSRANK_API_KEY`` environment variable; ``timeout`` in seconds).
        **load_options: ``max_length``, ``device``, ``use_fp16``, ``dtype``; ``None`` = default.

    >>> resolve_reranker("cross-encoder/ms-marco-MiniLM-L-6-v2", device="cpu")  # doctest: +SKIP
    Reranker('cross-encoder/ms-marco-MiniLM-L-6-v2', device='cpu', dtype='float32', max_length=512)
    """
    reranker_kwargs, load_options = split_reranker_kwargs(reranker_kwargs, load_options)
    check_sources(model, reranker, reranker_kwargs, base_url, api_key, load_options)
    if reranker is not None:
        return reranker
    if base_url is not None:
        from .client.remote import RemoteReranker

        return RemoteReranker(base_url, api_key=api_key, timeout=timeout, model=model)
    from .loading import DEFAULT_MODEL
    from .reranker import Reranker  # the one place a wrapper imports torch

    options = {name: value for name, value in load_options.items() if value is not None}
    return Reranker(DEFAULT_MODEL if model is None else model, **options, **(reranker_kwargs or {}))


def describe(scorer: Scorer) -> Dict[str, Any]:
    """The wrapper fields that rebuild an equivalent scorer, read from ``scorer.info()``.

    >>> from crossrank.client.remote import RemoteReranker
    >>> describe(RemoteReranker("http://127.0.0.1:8080"))
    {'base_url': 'http://127.0.0.1:8080', 'model': None, 'timeout': 60.0}
    """
    info = scorer.info()
    names = REMOTE_DESCRIPTION if "base_url" in info else LOCAL_DESCRIPTION
    return {name: info[name] for name in names}


# ---------------------------------------------------------------------- the rule, for wrappers


def wrapper_fields(values: Mapping[str, Any]) -> Dict[str, Any]:
    """A wrapper's constructor arguments as field values: a new dict, the load options found in
    ``reranker_kwargs`` moved to their own fields (each option lives in one place), a path model
    as a string.

    >>> wrapper_fields({"reranker_kwargs": {"dtype": "bfloat16", "cache_size": 8}})
    {'reranker_kwargs': {'cache_size': 8}, 'dtype': 'bfloat16'}
    """
    fields = dict(values)
    if isinstance(fields.get("model"), os.PathLike):
        fields["model"] = os.fspath(fields["model"])
    if not fields.get("reranker_kwargs"):
        return fields
    _check_kwargs_type(fields["reranker_kwargs"])
    given = {name: fields.get(name) for name in LOAD_OPTIONS}
    rest, merged = split_reranker_kwargs(fields["reranker_kwargs"], given)
    fields.update({name: value for name, value in merged.items() if value is not None})
    fields["reranker_kwargs"] = rest or None  # never the caller's dict
    return fields


class Opened(NamedTuple):
    """What :func:`open_scorer` gives a wrapper."""

    scorer: Scorer  # what scores
    reranker: Optional[Scorer]  # the scorer shared or loaded; None when built from base_url
    fields: Dict[str, Any]  # field values that describe the scorer in use (for dumps)


def open_scorer(wrapper: Any, reranker: Any = None, *, describe_loaded: bool = True) -> Opened:
    """Apply the rule to a wrapper's validated fields (``model``, ``reranker_kwargs``, the load
    options, ``base_url``/``api_key``/``timeout`` and ``batch_size`` where it has them).

    ``reranker`` is the shared scorer (default: the wrapper's own ``reranker`` field). A shared
    scorer is always described in ``fields``; a loaded one fully with ``describe_loaded``, else
    only its model name.

    >>> class Wrapper:  # any object with the fields
    ...     base_url, api_key, timeout, batch_size = "http://127.0.0.1:8080", None, 5.0, None
    >>> open_scorer(Wrapper()).scorer.info()["timeout"]
    5.0
    """
    field = functools.partial(getattr, wrapper)
    base_url, api_key = field("base_url", None), field("api_key", None)
    if hasattr(api_key, "get_secret_value"):  # pydantic's SecretStr, without importing pydantic
        api_key = api_key.get_secret_value()
    if base_url is not None and field("batch_size", None) is not None:
        raise ValueError(
            "batch_size is chosen by the server with base_url= (crossrank serve "
            "--max-batch-tokens); leave it None"
        )
    shared = reranker if reranker is not None else field("reranker", None)
    scorer = resolve_reranker(
        field("model", None),
        shared,
        field("reranker_kwargs", None),
        base_url=base_url,
        api_key=api_key,
        timeout=field("timeout", 60.0),
        **{name: field(name, None) for name in LOAD_OPTIONS},
    )
    if base_url is not None:
        return Opened(scorer, None, {})
    described = describe(scorer)
    if shared is None and not describe_loaded:  # only fill in the default model's name
        described = {} if field("model", None) is not None else {"model": described["model"]}
    return Opened(scorer, scorer, described)
