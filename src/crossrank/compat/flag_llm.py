"""``FlagLLMReranker``: FlagEmbedding 1.4's decoder LLM reranker API on crossrank's core.

See :mod:`crossrank.compat.flag` for what the drop-in keeps and where it differs.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from ..errors import warn_once
from .flag import Devices, FlagReranker, Scores, _FlagBase, _instruct
from .signatures import extends, option


class FlagLLMReranker(_FlagBase):
    """FlagEmbedding 1.4's ``FlagLLMReranker`` (decoder LLM rerankers such as bge-reranker-v2-gemma).

    Same constructor and ``compute_score`` as FlagEmbedding's, scored with its prompt
    (``A: {query}``, ``B: {passage}``, the ``prompt``, the ``"Yes"`` logit) whatever the model type.

    Args:
        model_name_or_path: hub id or local checkpoint directory (a ``*ForCausalLM``).
        peft_path: not taken: merge the adapter first (``PeftModel.merge_and_unload()``, then
            ``save_pretrained``) and pass that directory.
        use_fp16: float16 on CUDA/MPS; ignored on CPU. use_bf16: bfloat16 (on CPU too).
        query_instruction_for_rerank, query_instruction_format, passage_instruction_for_rerank,
            passage_instruction_format: only FlagEmbedding's defaults (``"A: "``, ``"B: "``,
            ``"{}{}"``), which is what bge-reranker-v2-gemma was trained with; others raise.
        prompt: the question after the passage; ``None`` keeps bge's default.
        cache_dir, trust_remote_code, devices, batch_size, query_max_length, max_length,
            normalize: as :class:`FlagReranker`.

    >>> reranker = FlagLLMReranker("BAAI/bge-reranker-v2-gemma", use_fp16=True)  # doctest: +SKIP
    >>> reranker.compute_score([["what is panda?", "hi"]])                       # doctest: +SKIP
    """

    _cls_name = "FlagLLMReranker"

    def __init__(
        self,
        model_name_or_path: str,
        peft_path: Optional[str] = None,
        use_fp16: bool = False,
        use_bf16: bool = False,
        query_instruction_for_rerank: str = "A: ",
        query_instruction_format: str = "{}{}",
        passage_instruction_for_rerank: str = "B: ",
        passage_instruction_format: str = "{}{}",
        cache_dir: Optional[str] = None,
        trust_remote_code: bool = False,
        devices: Devices = None,
        prompt: Optional[str] = None,
        batch_size: int = 128,
        query_max_length: Optional[int] = None,
        max_length: int = 512,
        normalize: bool = False,
        **kwargs: Any,
    ) -> None:
        if peft_path is not None:
            raise ValueError(
                f"peft_path={peft_path!r}: crossrank loads plain checkpoints; merge the adapter "
                "(PeftModel.from_pretrained(model, peft_path).merge_and_unload().save_pretrained(DIR)) "
                "and pass DIR as model_name_or_path"
            )
        for name, instruction, template, marker in (
            ("query", query_instruction_for_rerank, query_instruction_format, "A: "),
            ("passage", passage_instruction_for_rerank, passage_instruction_format, "B: "),
        ):
            if instruction is None or _instruct(template, instruction, "") != marker:
                raise ValueError(
                    f"{name}_instruction_for_rerank={instruction!r} with {name}_instruction_format="
                    f"{template!r}: crossrank's bge prompt puts {marker!r} before each {name} "
                    "(FlagEmbedding's default, what bge-reranker-v2-gemma was trained with); "
                    "other instructions are not supported"
                )
        self.peft_path, self.use_fp16, self.use_bf16, self.prompt = None, use_fp16, use_bf16, prompt
        self._set_instructions(query_instruction_for_rerank, query_instruction_format,
                               passage_instruction_for_rerank, passage_instruction_format)  # fmt: skip
        try:
            self._setup(
                model_name_or_path, cache_dir, devices, batch_size, max_length, query_max_length,
                normalize, kwargs,
                use_fp16=bool(use_fp16),
                # FlagEmbedding loads bf16 weights and halves them only where use_fp16 applies
                dtype="bfloat16" if use_bf16 and not use_fp16 else None,
                trust_remote_code=trust_remote_code,
                instruction=prompt,
                prompt_format="bge",
            )
        except ValueError as error:
            if "is a cross-encoder" not in str(error):
                raise
            raise ValueError(
                f"model_name_or_path={model_name_or_path!r} is a cross-encoder; use FlagReranker"
            ) from error
        self.model_name_or_path = model_name_or_path

    @extends(
        FlagReranker.compute_score,
        max_length=[option("prompt", Optional[str])],
        normalize=[option("use_dataloader", bool, False), option("num_workers", Optional[int])],
    )
    def compute_score(self, call: Dict[str, Any]) -> Scores:
        """Scores of ``[query, passage]`` pairs, in input order (a list, also for one pair).

        ``prompt`` may only repeat the constructor's (the prompt is set per reranker);
        ``use_dataloader``/``num_workers`` are accepted and unused: crossrank tokenizes in-process.

        >>> reranker.compute_score([["q", "p1"], ["q", "p2"]], normalize=True)  # doctest: +SKIP
        """
        prompt = call.pop("prompt")
        if prompt is not None and prompt != self.prompt:
            raise ValueError(
                f"compute_score(prompt={prompt!r:.60}) differs from the constructor's; pass it as "
                "FlagLLMReranker(..., prompt=...)"
            )
        use_dataloader, num_workers = call.pop("use_dataloader"), call.pop("num_workers")
        if use_dataloader or num_workers is not None:
            warn_once(
                "flag-dataloader",
                "FlagLLMReranker.compute_score: use_dataloader/num_workers are not used; crossrank "
                "tokenizes in-process (scores are unchanged).",
            )
        return self._score(**call)
