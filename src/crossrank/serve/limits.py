"""Error bodies every client can read, the request-body size limit, and validation messages.

Errors carry ``message`` (read by the Cohere SDK) and ``detail`` (read by Jina clients and FastAPI
users), and name the field at fault. On the TEI route (``/rerank``) they also carry TEI's
``error`` (the same message) and ``error_type`` (``"Validation"``, ``"Overloaded"``, ...).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .jsonio import FastJSONResponse


class ServeError(Exception):
    """An error answered with ``status`` and ``{"message", "detail"}``."""

    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


TEI_ROUTE = "/rerank"
# TEI's ErrorType names; TEI itself answers 401 with no body, so "Unauthorized" is crossrank's
_TEI_ERROR_TYPES = {401: "Unauthorized", 429: "Overloaded", 503: "Unhealthy"}


def error_body(
    message: str, detail: Any = None, tei_status: Optional[int] = None
) -> Dict[str, Any]:
    """``{"message": ..., "detail": ...}``; ``detail`` repeats the message unless given.

    With ``tei_status`` (an error of the TEI route) also TEI's ``error`` and ``error_type``.

    >>> error_body("busy", tei_status=429)
    {'message': 'busy', 'detail': 'busy', 'error': 'busy', 'error_type': 'Overloaded'}
    """
    body = {"message": message, "detail": message if detail is None else detail}
    if tei_status is not None:
        body["error"] = message
        body["error_type"] = tei_error_type(tei_status)
    return body


def tei_error_type(status: int) -> str:
    """TEI's ``error_type`` for an HTTP status: 4xx ``Validation`` unless named, 5xx ``Backend``."""
    return _TEI_ERROR_TYPES.get(status, "Backend" if status >= 500 else "Validation")


def is_tei_route(scope: Mapping[str, Any]) -> bool:
    """Whether a request (its ASGI scope) is for the TEI route, under any mount prefix."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path == TEI_ROUTE


def error_response(
    scope: Mapping[str, Any],
    status: int,
    message: str,
    detail: Any = None,
    headers: Optional[Dict[str, str]] = None,
) -> FastJSONResponse:
    """The JSON error answer, with TEI's keys on the TEI route."""
    tei_status = status if is_tei_route(scope) else None
    return FastJSONResponse(
        error_body(message, detail, tei_status), status_code=status, headers=headers
    )


def validation_message(errors: Sequence[Dict[str, Any]]) -> Tuple[str, List[Dict[str, Any]]]:
    """A one-line message naming each bad field, and the errors without their (maybe huge) inputs."""
    detail: List[Dict[str, Any]] = []
    by_field: Dict[str, List[str]] = {}
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p != "body"]
        # a union (str | {"text"}) reports one error per branch under one field
        loc = [p for p in loc if p not in ("str", "TextDocument")]
        field = _dotted(loc) or "body"
        msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "json_invalid":
            field, msg = "body", f"invalid JSON: {error.get('ctx', {}).get('error', msg)}"
        detail.append({"loc": loc, "msg": msg, "type": str(error.get("type", ""))})
        messages = by_field.setdefault(field, [])
        if msg not in messages:
            messages.append(msg)
    parts = [f"{field}: {' or '.join(msgs)}" for field, msgs in by_field.items()]
    return "; ".join(parts[:5]), detail


def _dotted(loc: List[str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


class BodyLimit:
    """ASGI middleware: a request body over ``max_body_bytes`` gets 413 before anything parses it.

    Checks Content-Length first, then counts streamed bytes (chunked uploads have no length).
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app, self.limit = app, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length", b"").decode("latin-1").strip()
        if length.isdigit() and int(length) > self.limit:
            return await self._too_large(scope, receive, send)
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await self._too_large(scope, receive, send)
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError as error:
            message = f"body: the request body is not valid UTF-8 (byte {error.start})"
            return await error_response(scope, 400, message)(scope, receive, send)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"body: the request body is over the {self.limit}-byte limit (max_body_bytes)"
        await error_response(scope, 413, message)(scope, receive, send)
