"""The fields that say where scores come from, shared by ``CrossRankRerank`` and the cross-encoder."""

from __future__ import annotations

from typing import Any

from pydantic import PrivateAttr, ValidationInfo, model_validator

from crossrank.integration import options_model
from crossrank.sources import open_scorer, wrapper_fields

_Fields = options_model(
    "ModelSourceFields",
    groups=("reranker", "source"),
    arbitrary_types_allowed=True,
    extra="forbid",
    validate_assignment=True,
)


class ModelSource(_Fields):
    """``model=`` (with load options and ``reranker_kwargs``) or ``reranker=``; loaded once.

    The rule itself is :mod:`crossrank.sources`, the same for every wrapper. Fields that decide
    the model are frozen: assigning one after construction would not reload anything, so it is an
    error instead; the other fields are validated on assignment.
    """

    _scorer: Any = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _load_options_to_fields(cls, values: Any, info: ValidationInfo) -> Any:
        if info.field_name is not None or not isinstance(values, dict):
            return values  # an assignment, or input pydantic will reject with its own error
        return wrapper_fields(values)

    def model_post_init(self, context: Any) -> None:
        # Runs inside pydantic's validation: the ValueErrors of the construction rule surface as a
        # ValidationError like any field error; ModelLoadError (an OSError) passes through.
        opened = open_scorer(self, describe_loaded=False)
        self._scorer = opened.scorer
        # Frozen fields are written directly: they describe the model in use, they do not choose it.
        self.__dict__.update(opened.fields, reranker=opened.reranker)
