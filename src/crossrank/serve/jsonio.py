"""JSON answers written by orjson (``crossrank[serve]`` installs it): several times faster than
the standard library for the float-heavy result lists, the same values. Without orjson the
standard library writes them, as Starlette's ``JSONResponse`` does."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

try:
    import orjson
except ImportError:  # an install without the extra's orjson: still correct, slower
    orjson = None


class FastJSONResponse(JSONResponse):
    """``JSONResponse`` rendered by orjson when installed.

    >>> FastJSONResponse({"index": 1, "relevance_score": 0.25}).body
    b'{"index":1,"relevance_score":0.25}'
    """

    def render(self, content: Any) -> bytes:
        if orjson is None:
            return super().render(content)
        # orjson writes NaN as null where Starlette refuses it: the routes refuse a non-finite
        # score before answering (routing.finite), so both write the same JSON
        return orjson.dumps(content)
