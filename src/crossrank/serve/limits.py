"""Error bodies every client can read, the request-body size limit, and validation messages.

Errors carry ``message`` (read by the Cohere SDK) and ``detail`` (read by Jina clients and FastAPI
users), and name the field at fault.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ServeError(Exception):
    """An error answered with ``status`` and ``{"message", "detail"}``."""

    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def error_body(message: str, detail: Any = None) -> Dict[str, Any]:
    """``{"message": ..., "detail": ...}``; ``detail`` repeats the message unless given."""
    return {"message": message, "detail": message if detail is None else detail}


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
            return await JSONResponse(error_body(message), status_code=400)(scope, receive, send)
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
        await JSONResponse(error_body(message), status_code=413)(scope, receive, send)
