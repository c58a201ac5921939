"""What one app holds: the reranker (loaded now or in the background), its batcher, limits, metrics."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, Optional, Sequence

from .batcher import Batcher
from .lengths import LengthCheck, TooLong
from .limits import ServeError
from .metrics import Metrics
from .settings import ServeSettings

logger = logging.getLogger("crossrank.serve")


class ServiceState:
    """The loaded reranker, its batcher, the limits and the metrics of one app.

    >>> ServiceState(reranker, ServeSettings()).model_name                # doctest: +SKIP
    'BAAI/bge-reranker-base'
    """

    def __init__(self, reranker, settings: ServeSettings, on_load_error=None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.loader: Optional[Callable[[], Any]] = None
        self.reranker = None
        if hasattr(reranker, "score_many"):
            self.reranker = reranker
        elif callable(reranker):
            self.loader = reranker
        else:
            raise TypeError(
                "reranker must be a Reranker (or anything with score_many) or a function that "
                f"returns one, got {type(reranker).__name__}"
            )
        self.batcher: Optional[Batcher] = None
        self.load_error: Optional[str] = None
        self.on_load_error = on_load_error
        self._loading: Optional[threading.Thread] = None
        self._lengths: Optional[LengthCheck] = None
        self._lengths_lock = threading.Lock()

    def start(self) -> None:
        if self.reranker is not None:
            self._start_batcher()
        else:  # load in the background: /health answers 503 meanwhile
            self._loading = threading.Thread(target=self._load, name="crossrank-load", daemon=True)
            self._loading.start()

    def _load(self) -> None:
        try:
            self.reranker = self.loader()
            self._start_batcher()
            logger.info("model loaded: %s", getattr(self.reranker, "model_name", "?"))
        except Exception as error:  # the service stays up and says why on /health
            self.load_error = f"{type(error).__name__}: {error}"
            logger.error("model failed to load: %s", self.load_error)
            if self.on_load_error is not None:
                self.on_load_error(error)

    def _start_batcher(self) -> None:
        s = self.settings
        batcher = Batcher(
            self.reranker, s.max_batch_tokens, s.max_wait_ms, s.max_queued_pairs, self.metrics
        )
        batcher.start()
        self.batcher = batcher

    def stop(self) -> None:
        """Finish every accepted request, then end the worker."""
        if self._loading is not None:
            self._loading.join()
        if self.batcher is not None:
            self.batcher.stop()

    def too_long(self, query: str, texts: Sequence[str], field: str) -> Optional[TooLong]:
        """The query or first text that scoring would cut (TEI's ``truncate: false``), or None.

        Tokenizes: call it off the event loop. The checker is built on first use.
        """
        with self._lengths_lock:
            if self._lengths is None:
                try:
                    self._lengths = LengthCheck(self.reranker)
                except ValueError as error:
                    raise ServeError(422, f"truncate: {error}") from None
        return self._lengths.check(query, texts, field)

    @property
    def calibration(self):
        """The served reranker's calibration (normalized scores use it), or None."""
        return getattr(self.reranker, "calibration", None)

    @property
    def model_name(self) -> str:
        return str(getattr(self.reranker, "model_name", "unknown"))

    def info(self) -> Dict[str, Any]:
        rr = self.reranker
        described = rr.info() if hasattr(rr, "info") else {}
        info = {
            "model": self.model_name,
            "device": str(getattr(rr, "device", "")),
            "dtype": str(getattr(rr, "dtype", "")).replace("torch.", ""),
            "backend": getattr(rr, "backend", "torch"),
            "quantize": getattr(rr, "quantize", None),
            "max_length": getattr(rr, "max_length", None),
            "long_documents": getattr(rr, "long_documents", None),
        }
        info.update({k: _plain(v) for k, v in described.items()})
        info["limits"] = self.settings.public()
        return info


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def not_ready(state: ServiceState) -> str:
    """Why the service cannot score yet."""
    if state.load_error:
        return f"the model failed to load: {state.load_error}"
    return "the model is still loading"
