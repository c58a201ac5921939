"""Where a request's time went: TEI's timing headers, the request id and the JSON access log.

Every answer carries, in whole milliseconds as TEI writes them: ``x-total-time`` (received to
answered), ``x-compute-time`` (the same, as TEI), ``x-queue-time`` (accepted until the worker
first took its pairs), ``x-tokenization-time`` and ``x-inference-time`` (of the scoring rounds
that held its pairs: a round's time counts for every request in it); the last three are 0 when
nothing was scored. ``x-request-id`` echoes the client's or is generated, and names the request
in the access log line (logger ``crossrank.serve.access``, one JSON object per request).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

access_logger = logging.getLogger("crossrank.serve.access")

REQUEST_ID_HEADER = "x-request-id"
TIMINGS_KEY = "crossrank.timings"  # where the ASGI scope carries a request's Timings
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")  # echoed as is only when plainly safe


@dataclass
class Timings:
    """One request's timings (seconds) and what the access log says of it.

    >>> timings = Timings(queue_s=0.0021, inference_s=0.0153)
    >>> timings.headers(total_s=0.02)["x-inference-time"]
    '15'
    """

    request_id: str = ""
    started: float = field(default_factory=time.perf_counter)
    queue_s: float = 0.0
    tokenize_s: float = 0.0
    inference_s: float = 0.0
    model: Optional[str] = None
    pairs: int = 0
    outcome: Optional[str] = None  # "timeout", "disconnect" when the request did not finish
    queued_at: Optional[float] = None  # perf_counter when the batcher accepted it

    def add(self, ticket) -> None:
        """Take a batcher ticket's times (:class:`crossrank.serve.batcher.Ticket`)."""
        self.queued_at = ticket.submitted
        self.queue_s += ticket.queue_s
        self.tokenize_s += ticket.tokenize_s
        self.inference_s += ticket.inference_s

    def headers(self, total_s: float) -> Dict[str, str]:
        total = _ms(total_s)
        return {
            "x-compute-time": total,
            "x-total-time": total,
            "x-queue-time": _ms(self.queue_s),
            "x-tokenization-time": _ms(self.tokenize_s),
            "x-inference-time": _ms(self.inference_s),
            REQUEST_ID_HEADER: self.request_id,
        }

    def access_line(self, method: str, path: str, status: int, total_s: float,
                    client: Optional[str]) -> str:  # fmt: skip
        """The JSON access log line."""
        record: Dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "request_id": self.request_id,
            "method": method,
            "path": path,
            "status": status,
            "model": self.model,
            "pairs": self.pairs,
            "total_ms": round(total_s * 1000, 3),
            "queue_ms": round(self.queue_s * 1000, 3),
            "tokenization_ms": round(self.tokenize_s * 1000, 3),
            "inference_ms": round(self.inference_s * 1000, 3),
            "client": client,
        }
        if self.outcome:
            record["outcome"] = self.outcome
        return json.dumps(record, separators=(",", ":"))


def request_id(given: Optional[str]) -> str:
    """The client's ``x-request-id`` when it is a plain token, else a new one."""
    if given and _SAFE_ID.match(given):
        return given
    return uuid.uuid4().hex


def _ms(seconds: float) -> str:
    return str(int(max(seconds, 0.0) * 1000))
