"""The fields that say where scores come from, shared by ``CrossRankRerank`` and the cross-encoder."""

from __future__ import annotations

from typing import Any, Dict, Optional

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, model_validator

from crossrank import DEFAULT_MODEL, Reranker
from crossrank.sharing import LOAD_OPTIONS, dtype_name, resolve_reranker, split_reranker_kwargs


class ModelSource(BaseModel):
    """``model=`` (with load options and ``reranker_kwargs``) or ``reranker=``; loaded once.

    The rule itself is :func:`crossrank.sharing.resolve_reranker`, the same for every wrapper.
    Fields that decide the model are frozen: assigning one after construction would not reload
    anything, so it is an error instead; the other fields are validated on assignment.
    """

    model: Optional[str] = Field(
        default=None,
        frozen=True,
        description=f"Hub id or local checkpoint directory of the cross-encoder "
        f"(default {DEFAULT_MODEL!r}). Give either this or ``reranker``.",
    )
    reranker: Optional[Reranker] = Field(
        default=None,
        exclude=True,
        frozen=True,
        description="An already loaded crossrank.Reranker to share instead of loading ``model``. "
        "After construction it holds the Reranker in use; it is never serialized.",
    )
    reranker_kwargs: Optional[Dict[str, Any]] = Field(
        default=None,
        frozen=True,
        description="Any crossrank.Reranker option for the model loaded from ``model``: "
        "backend, quantize, long_documents, cache_size, ...; load options given here (dtype, "
        "device, max_length, use_fp16) move to their own fields.",
    )
    max_length: Optional[int] = Field(
        default=None, ge=16, frozen=True, description="Tokens per pair; None = 512."
    )
    device: Optional[str] = Field(
        default=None,
        frozen=True,
        description='"auto" (None: CUDA, then MPS, then CPU), "cpu", "cuda[:N]", "mps".',
    )
    use_fp16: Optional[bool] = Field(
        default=None, frozen=True, description="Half precision; None means yes on CUDA/MPS only."
    )
    dtype: Optional[str] = Field(
        default=None,
        frozen=True,
        description='Force "float32", "float16" or "bfloat16"; with reranker= it reports the '
        "shared Reranker's precision.",
    )

    model_config = ConfigDict(
        arbitrary_types_allowed=True, extra="forbid", validate_assignment=True
    )

    _scorer: Any = PrivateAttr(default=None)

    def _remote_options(self) -> Dict[str, Any]:
        """``base_url``/``api_key``/``timeout`` where the subclass scores remotely."""
        return {}

    @model_validator(mode="before")
    @classmethod
    def _load_options_to_fields(cls, values: Any, info: ValidationInfo) -> Any:
        # reranker_kwargs={"dtype": ...} sets the dtype field: each option lives in one place.
        if info.field_name is not None or not isinstance(values, dict):
            return values  # an assignment, or input pydantic will reject with its own error
        if not values.get("reranker_kwargs"):
            return values
        given = {name: values.get(name) for name in LOAD_OPTIONS}
        rest, merged = split_reranker_kwargs(values["reranker_kwargs"], given)
        moved = {name: value for name, value in merged.items() if value is not None}
        return {**values, **moved, "reranker_kwargs": rest or None}  # never the caller's dict

    def _load_options(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in LOAD_OPTIONS}

    def model_post_init(self, context: Any) -> None:
        # Runs inside pydantic's validation: the ValueErrors of the construction rule surface as a
        # ValidationError like any field error; ModelLoadError (an OSError) passes through.
        shared = self.reranker is not None
        self._scorer = resolve_reranker(
            self.model,
            self.reranker,
            self.reranker_kwargs,
            **self._remote_options(),
            **self._load_options(),
        )
        if not isinstance(self._scorer, Reranker):
            return
        # Frozen fields are written directly: they describe the model in use, they do not choose it.
        self.__dict__["reranker"] = self._scorer
        if shared:
            # Describe the shared model, so model_dump() rebuilds an equivalent object.
            self.__dict__.update(
                model=self._scorer.model_name,
                device=str(self._scorer.device),
                max_length=self._scorer.max_length,
                dtype=dtype_name(self._scorer),
            )
        elif self.model is None:
            self.__dict__["model"] = self._scorer.model_name
