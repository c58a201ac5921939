"""The models one server serves: ``--model NAME=PATH`` (repeatable) or one bare ``PATH``.

Each model has its own loader, batcher (its own queue bound and worker thread), length checker,
text cut and metrics label; a request picks one by its ``model`` field (Cohere, Jina), or on TEI's
route by :data:`MODEL_HEADER` (its body has no such field in TEI). With one model the field is
accepted and ignored, as before several models could be served.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable, List, Optional, Sequence, Tuple

from .batcher import Batcher
from .cutting import text_bound
from .lengths import LengthCheck, TooLong
from .limits import ServeError
from .settings import ServeSettings

logger = logging.getLogger("crossrank.serve")

MODEL_HEADER = "X-Crossrank-Model"  # a request header picks the model; the answer names it


def parse_model_spec(spec: str) -> Tuple[Optional[str], str]:
    """``"NAME=PATH"`` → (NAME, PATH); a bare path or hub id → (None, it).

    A spec whose part before ``=`` holds a path separator, or that names an existing path, is a
    bare path (a directory may have ``=`` in its name).

    >>> parse_model_spec("en=BAAI/bge-reranker-base"), parse_model_spec("BAAI/bge-reranker-base")
    (('en', 'BAAI/bge-reranker-base'), (None, 'BAAI/bge-reranker-base'))
    """
    name, sep, path = str(spec).partition("=")
    if not sep or "/" in name or os.sep in name or os.path.exists(spec):
        return None, str(spec)
    if not name.strip() or not path.strip():
        raise ValueError(f"--model {spec!r}: expected NAME=PATH with both parts non-empty")
    return name.strip(), path.strip()


def check_model_names(names: Sequence[Optional[str]]) -> None:
    """Several models need a name each, and names must differ."""
    if len(names) > 1 and any(name is None for name in names):
        raise ValueError("--model: with several models give each a name: --model NAME=PATH")
    given = [name for name in names if name is not None]
    duplicates = sorted({name for name in given if given.count(name) > 1})
    if duplicates:
        raise ValueError(f"--model: names must differ; given twice: {', '.join(duplicates)}")


class ModelState:
    """One served model: its reranker (loaded now or in the background), batcher and checks.

    >>> ModelState("en", reranker, ServeSettings(), metrics).model_name  # doctest: +SKIP
    'en'
    """

    def __init__(self, name: Optional[str], reranker, settings: ServeSettings, metrics) -> None:
        self.given_name, self.settings, self.metrics = name, settings, metrics
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
        self.text_bound: Optional[int] = None
        self.load_error: Optional[str] = None
        self._lengths: Optional[LengthCheck] = None
        self._lengths_lock = threading.Lock()

    @property
    def model_name(self) -> str:
        """The name requests use: the one given, else the reranker's model name."""
        if self.given_name is not None:
            return self.given_name
        return str(getattr(self.reranker, "model_name", "unknown"))

    def load(self) -> None:
        """Load (if given a loader) and start the batcher; raises what loading raised."""
        if self.reranker is None:
            try:
                self.reranker = self.loader()
            except Exception as error:
                self.load_error = f"{type(error).__name__}: {error}"
                raise
            logger.info("model loaded: %s", self.model_name)
        self.text_bound = text_bound(self.reranker)
        s = self.settings
        batcher = Batcher(
            self.reranker, s.max_batch_tokens, s.max_wait_ms, s.max_queued_pairs, self.metrics,
            model=self.model_name,
        )  # fmt: skip
        batcher.start()
        self.batcher = batcher

    def stop(self) -> None:
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

    def not_ready(self) -> str:
        """Why this model cannot score yet."""
        if self.load_error:
            return f"the model {self.model_name!r} failed to load: {self.load_error}"
        return "the model is still loading"

    def info(self) -> dict:
        """Model, device, dtype, backend, max_length, ... as /info and /v1/models show them."""
        rr = self.reranker
        described = rr.info() if hasattr(rr, "info") else {}
        info = {
            "model": str(getattr(rr, "model_name", "unknown")),
            "device": str(getattr(rr, "device", "")),
            "dtype": str(getattr(rr, "dtype", "")).replace("torch.", ""),
            "backend": getattr(rr, "backend", "torch"),
            "quantize": getattr(rr, "quantize", None),
            "max_length": getattr(rr, "max_length", None),
            "long_documents": getattr(rr, "long_documents", None),
        }
        info.update({k: _plain(v) for k, v in described.items()})
        info["name"] = self.model_name
        info["text_bound_chars"] = self.text_bound
        return info


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def unknown_model(requested: str, served: List[str]) -> ServeError:
    """404 naming the model asked for and the ones served."""
    return ServeError(
        404, f"model: {requested!r} is not served here; served models: {', '.join(served)}"
    )
