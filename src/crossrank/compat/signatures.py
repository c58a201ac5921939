"""FlagEmbedding's signatures, each spelled out once.

FlagEmbedding's reranker classes repeat one another's parameters (``FlagLLMReranker.compute_score``
is ``FlagReranker``'s with ``prompt`` and the data-loader options added, the layer-wise classes add
``cutoff_layers`` and the compression options, each at its place in the positional order). A
drop-in method here declares only what it adds, with :func:`extends`: it shows the whole signature
(``help()``, IDEs, ``inspect``) and binds calls to it, so positional and keyword arguments land
exactly where FlagEmbedding puts them.

>>> def base(self, pairs, max_length=512, normalize=False, **kwargs): ...
>>> @extends(base, max_length=[option("prompt", str, None)])
... def method(self, call):
...     return call
>>> import inspect
>>> str(inspect.signature(method))
'(self, pairs, max_length=512, prompt: str = None, normalize=False, **kwargs)'
>>> method(None, [["q", "p"]], 256, "Yes?", extra=1)["prompt"]
'Yes?'
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Dict, Sequence, TypeVar

Method = TypeVar("Method", bound=Callable[..., Any])
_POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD


def option(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    """One parameter that a drop-in adds to another's signature."""
    return inspect.Parameter(name, _POSITIONAL, default=default, annotation=annotation)


def extends(base: Callable[..., Any], **after: Sequence[inspect.Parameter]):
    """Give the decorated method ``base``'s signature with ``after[name]`` inserted after its
    parameter ``name`` (in order), and call it as ``method(self, call)``: ``call`` holds every
    argument by name, defaults applied, and the extra keywords (``**kwargs``) as one dict under
    ``"kwargs"``. The return annotation is the method's own where it has one, else ``base``'s.
    A call that does not fit the signature is the usual ``TypeError``."""
    parameters = list(inspect.signature(base).parameters.values())
    for name, added in after.items():
        names = [parameter.name for parameter in parameters]
        if name not in names:
            raise ValueError(f"{base.__qualname__} has no parameter {name!r} to insert after")
        at = names.index(name) + 1
        parameters[at:at] = list(added)
    extra = next((p.name for p in parameters if p.kind is inspect.Parameter.VAR_KEYWORD), None)

    def decorate(method: Method) -> Method:
        returns = inspect.signature(method).return_annotation
        signature = inspect.signature(base).replace(parameters=parameters)
        if returns is not inspect.Signature.empty:  # the method's own, where it says one
            signature = signature.replace(return_annotation=returns)

        @functools.wraps(method)
        def bound(*args: Any, **kwargs: Any) -> Any:
            call = signature.bind(*args, **kwargs)
            call.apply_defaults()
            arguments: Dict[str, Any] = dict(call.arguments)
            self = arguments.pop("self")
            if extra is not None:
                arguments["kwargs"] = arguments.pop(extra)
            return method(self, arguments)

        bound.__signature__ = signature  # type: ignore[attr-defined]
        return bound  # type: ignore[return-value]

    return decorate


__all__ = ["extends", "option"]
