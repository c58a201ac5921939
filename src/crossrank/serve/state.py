"""What one app holds: its served models (each loaded now or in the background, each with its own
batcher), the limits, the API keys and the metrics."""

from __future__ import annotations

import logging
import threading
from typing import Any, Dict, List, Mapping, Optional

from .keys import ApiKeys
from .limits import ServeError
from .metrics import Metrics
from .models import MODEL_HEADER, ModelState, unknown_model
from .settings import ServeSettings

logger = logging.getLogger("crossrank.serve")


class ServiceState:
    """The served models, the limits, the keys and the metrics of one app.

    ``reranker``: one reranker (or a function returning one), or a mapping name → reranker (or
    function) for several models; the first is the default.

    >>> ServiceState(reranker, ServeSettings()).model_name                # doctest: +SKIP
    'BAAI/bge-reranker-base'
    >>> ServiceState({"en": rr_en, "multi": rr_multi}, ServeSettings()).names  # doctest: +SKIP
    ['en', 'multi']
    """

    def __init__(self, reranker, settings: ServeSettings, on_load_error=None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.keys = ApiKeys(settings.api_key, settings.api_key_file)
        given = reranker if isinstance(reranker, Mapping) else {None: reranker}
        if not given:
            raise ValueError("reranker: give at least one model")
        self.models: List[ModelState] = [
            ModelState(name, rr, settings, self.metrics) for name, rr in given.items()
        ]
        self.on_load_error = on_load_error
        self._loading: Optional[threading.Thread] = None

    # ------------------------------------------------------------------ the models

    @property
    def default(self) -> ModelState:
        return self.models[0]

    @property
    def names(self) -> List[str]:
        return [model.model_name for model in self.models]

    def model_for(self, requested: Optional[str], header: Optional[str] = None) -> ModelState:
        """The model a request asks for (its ``model`` field, else the model header), else the
        default. With one model any name is accepted (clients must send one); with several an
        unknown name is a 404 listing the served ones."""
        if len(self.models) == 1:
            return self.default
        wanted = requested if requested is not None else header
        if wanted is None:
            return self.default
        for model in self.models:
            if model.model_name == wanted:
                return model
        raise unknown_model(wanted, self.names)

    # compatibility: the default model's parts, as when a server had only one
    reranker = property(lambda self: self.default.reranker)
    batcher = property(lambda self: self.default.batcher)
    calibration = property(lambda self: self.default.calibration)
    model_name = property(lambda self: self.default.model_name)
    load_error = property(lambda self: self.default.load_error)

    def too_long(self, query, texts, field):
        return self.default.too_long(query, texts, field)

    @property
    def ready(self) -> bool:
        return all(model.batcher is not None for model in self.models)

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        if all(model.reranker is not None for model in self.models):
            self._load_all()
        else:  # load in the background: /health answers 503 meanwhile
            self._loading = threading.Thread(
                target=self._load_all, name="crossrank-load", daemon=True
            )
            self._loading.start()

    def _load_all(self) -> None:
        for model in self.models:  # one after the other: one load's memory peak at a time
            try:
                model.load()
            except Exception as error:  # the service stays up and says why on /health
                logger.error("model failed to load: %s", model.load_error)
                if self.on_load_error is not None:
                    self.on_load_error(error)
                return

    def stop(self) -> None:
        """Finish every accepted request, then end the workers."""
        if self._loading is not None:
            self._loading.join()
        for model in self.models:
            model.stop()

    # ------------------------------------------------------------------ descriptions

    def not_ready(self) -> str:
        for model in self.models:
            if model.batcher is None:
                return model.not_ready()
        return "ready"

    def info(self) -> Dict[str, Any]:
        """/info: the default model's description at the top (as with one model), every served
        model under ``models``, and the limits."""
        info = self.default.info()
        info["models"] = [model.info() if model.reranker is not None else
                          {"name": model.model_name, "status": model.not_ready()}
                          for model in self.models]  # fmt: skip
        info["limits"] = self.settings.public()
        return info

    def model_list(self) -> Dict[str, Any]:
        """/v1/models: OpenAI's list shape, each entry with the model's settings."""
        data = []
        for model in self.models:
            entry: Dict[str, Any] = {"id": model.model_name, "object": "model",
                                     "owned_by": "crossrank"}  # fmt: skip
            if model.reranker is not None:
                entry.update({k: v for k, v in model.info().items() if k != "name"})
            entry["ready"] = model.batcher is not None
            data.append(entry)
        return {"object": "list", "data": data}


def not_ready(state: ServiceState) -> str:
    """Why the service cannot score yet."""
    return state.not_ready()


def requested_model(state: ServiceState, model_field: Optional[str], headers) -> ModelState:
    """The ModelState a request routes to; 404 (:class:`ServeError`) for an unknown one."""
    return state.model_for(model_field, headers.get(MODEL_HEADER))


__all__ = ["ServiceState", "ServeError", "not_ready", "requested_model"]
