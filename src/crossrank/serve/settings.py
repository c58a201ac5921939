"""Limits and batching knobs of the reranking service, checked once when the app is built."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional

API_KEY_ENV = "CROSSRANK_API_KEY"


@dataclass(frozen=True)
class ServeSettings:
    """What the service accepts and how it batches; every field has a safe default.

    >>> ServeSettings(max_documents=200, api_key="secret").max_queued_pairs
    8192
    """

    max_documents: int = 1000  # per request; more -> 413
    max_body_bytes: int = 8 * 1024 * 1024  # request body; more -> 413
    max_queued_pairs: int = 8192  # accepted, unscored pairs of all requests; more -> 429
    max_batch_tokens: int = 16384  # estimated tokens the worker scores in one score_many call
    # how long an idle worker holds a round open for more requests: 0, as continuous batching
    # (what arrives while a round runs makes the next round; waiting only adds latency)
    max_wait_ms: float = 0.0
    retry_after_s: int = 1  # Retry-After of a 429
    api_key: Optional[str] = field(default=None, repr=False)  # Bearer token; None = open
    api_key_file: Optional[str] = None  # more keys, one a line; reread on SIGHUP
    request_timeout_s: Optional[float] = None  # queue + scoring; past it -> 504, pairs dropped

    def __post_init__(self) -> None:
        for name in ("max_documents", "max_body_bytes", "max_queued_pairs", "max_batch_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.max_queued_pairs < self.max_documents:
            raise ValueError(
                f"max_queued_pairs ({self.max_queued_pairs}) must be >= max_documents "
                f"({self.max_documents}), or a full-size request could never be accepted"
            )
        wait = self.max_wait_ms
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= 1000:
            raise ValueError(f"max_wait_ms must be a number in [0, 1000], got {wait!r}")
        retry = self.retry_after_s
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 1:
            raise ValueError(f"retry_after_s must be a positive int, got {retry!r}")
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key):
            raise ValueError("api_key must be a non-empty str or None")
        timeout = self.request_timeout_s
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
        ):
            raise ValueError(
                f"request_timeout_s must be a positive number or None, got {timeout!r}"
            )
        key_file = self.api_key_file
        if key_file is not None and (not isinstance(key_file, str) or not key_file):
            raise ValueError("api_key_file must be a non-empty path str or None")

    @classmethod
    def from_env(cls, **overrides: Any) -> ServeSettings:
        """Settings with ``api_key`` taken from ``CROSSRANK_API_KEY`` unless given."""
        if overrides.get("api_key") is None:
            overrides["api_key"] = os.environ.get(API_KEY_ENV) or None
        return cls(**overrides)

    def public(self) -> Dict[str, Any]:
        """The limits as /info shows them (never the key itself)."""
        limits = asdict(self)
        limits["api_key"] = self.api_key is not None or limits.pop("api_key_file") is not None
        return limits
