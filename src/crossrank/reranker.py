"""The reranker: load a cross-encoder or a decoder LLM reranker, score, rank."""

from __future__ import annotations

import os
import threading
from typing import List, Optional, Sequence, Union

import torch
from tqdm.auto import tqdm

from .batching import collate, plan_batches, restore_order
from .cache import ScoreCache
from .devices import (
    DeviceLike,
    DTypeLike,
    choose_dtype,
    is_out_of_memory,
    resolve_device,
    warn_once,
)
from .families import decoder as llm
from .families.cross_encoder import Feature, PairEncoder
from .loading import (
    DEFAULT_MODEL,
    cap_max_length,
    check_head,
    resolve_prompt_format,
)
from .loading import load_model as _load  # a module global, so tests can count loads
from .results import RankedDocument, select, validate_top_k
from .validation import (
    as_pairs,
    check_documents,
    check_llm_options,
    check_long_document_options,
    check_query,
    check_speed_options,
    onnx_device,
    sigmoid,
)
from .windows import max_per_document

Pair = Union[Sequence[str], tuple]

# Pairs encoded at once: CHUNK_BATCHES batches' worth, and at least MIN_CHUNK.
CHUNK_BATCHES = 16
MIN_CHUNK = 256


class Reranker:
    """A cross-encoder reranker for any Hugging Face ``*ForSequenceClassification`` checkpoint.

    Scores match FlagEmbedding's ``FlagReranker`` on the same weights: the query is capped at
    3/4 of ``max_length`` and the passage truncated to fit. A 1-logit head scores with its logit,
    a 2-logit head with ``logit[1] - logit[0]``.

    Decoder LLM rerankers (a ``*ForCausalLM`` checkpoint) are scored from the next-token logits
    with the prompt their family was trained with (see :mod:`crossrank.families.decoder`): Qwen3-Reranker with
    ``logit("yes") - logit("no")``, bge-reranker-v2-gemma with the ``"Yes"`` logit, as
    FlagEmbedding's ``FlagLLMReranker``.

    Args:
        model: a hub id (``"BAAI/bge-reranker-base"``) or a local checkpoint directory.
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        use_fp16: half precision where the device does it well; ``None`` (default) means yes on
            CUDA/MPS and no on CPU, where ``True`` is ignored with a note.
        dtype: force ``"float32"``, ``"float16"`` or ``"bfloat16"`` on any device.
        max_length: tokens per (query, passage) pair.
        query_max_length: tokens kept of the query (default ``max_length * 3 // 4``).
        batch_size: pairs per batch for the longest pairs; shorter pairs share the same token budget.
            Pairs are encoded and scored 16 batches (at least 256 pairs) at a time, so memory
            does not grow with the number of pairs in a call.
        show_progress_bar: show a tqdm bar while scoring.
        trust_remote_code: passed to ``from_pretrained`` for checkpoints with custom code.
        instruction: decoder LLM rerankers only: the task instruction (Qwen3-Reranker's
            ``<Instruct>``, bge-reranker-v2-gemma's prompt); ``None`` keeps the family's default.
        long_documents: ``"truncate"`` (default) cuts a passage that does not fit next to the
            query; ``"maxp"`` splits it into overlapping token windows, scores each and keeps the
            best (all windows of all documents share the same batches).
        stride: with ``"maxp"``, tokens shared by consecutive windows (at most half a window).
        prompt_format: decoder LLM rerankers only: ``"qwen3"`` or ``"bge"`` where the model type
            does not tell (detected for ``qwen2``/``qwen3`` and ``gemma``/``gemma2``).
        backend: ``"torch"`` (default) or ``"onnx"``: ONNX Runtime on CPU (``pip install
            crossrank[onnx]``; cross-encoders only), exported once and cached next to the model.
        quantize: with ``backend="onnx"``, ``"int8"`` runs an int8-quantized export (about 3x
            faster on CPU, scores move slightly); ``None`` (default) keeps float32.
        cache_size: keep the raw scores of this many (query, passage) pairs and never score a
            cached pair again (keyed by the exact texts and every setting that changes a score);
            0 (default) turns the cache off.

    Example:
        >>> rr = Reranker("BAAI/bge-reranker-base")                      # doctest: +SKIP
        >>> rr.compute_score(["what is panda?", "The giant panda is a bear."])  # doctest: +SKIP
        5.26
        >>> [d.index for d in rr.rank("what is panda?", ["hi", "The giant panda ..."])]  # doctest: +SKIP
        [1, 0]

    One instance can be shared between threads.
    """

    def __init__(
        self,
        model: Union[str, os.PathLike] = DEFAULT_MODEL,
        *,
        device: DeviceLike = "auto",
        use_fp16: Optional[bool] = None,
        dtype: DTypeLike = None,
        max_length: int = 512,
        query_max_length: Optional[int] = None,
        batch_size: int = 32,
        show_progress_bar: bool = False,
        trust_remote_code: bool = False,
        instruction: Optional[str] = None,
        long_documents: str = "truncate",
        stride: int = 128,
        prompt_format: Optional[str] = None,
        backend: str = "torch",
        quantize: Optional[str] = None,
        cache_size: int = 0,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 16:
            raise ValueError(f"max_length must be an int >= 16, got {max_length!r}")
        check_long_document_options(long_documents, stride)
        check_llm_options(instruction, prompt_format)
        check_speed_options(backend, quantize, cache_size)
        self.device = resolve_device(device)
        if backend == "onnx":
            self.device = onnx_device(device, self.device, dtype)
        self.dtype = choose_dtype(self.device, use_fp16, dtype)
        self.model_name = os.fspath(model) if isinstance(model, os.PathLike) else model
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar
        self._trust_remote_code = trust_remote_code
        self.long_documents = long_documents
        self.stride = stride
        self.tokenizer, self.model = _load(self.model_name, trust_remote_code)
        self.prompt_format = resolve_prompt_format(
            self.model, self.tokenizer, prompt_format, instruction, self.model_name
        )  # None for a cross-encoder
        self.max_length = cap_max_length(max_length, self.tokenizer, self.model)
        if self.prompt_format is None:
            self.num_labels = check_head(self.model, self.model_name)
            self.encoder = PairEncoder(self.tokenizer, self.max_length, query_max_length)
        else:
            self.encoder = llm.PromptEncoder(
                self.tokenizer, self.prompt_format, self.max_length, query_max_length, instruction
            )
            self.num_labels = len(self.encoder.label_token_ids)  # [no, yes] or [Yes]
        self.model.to(device=self.device, dtype=self.dtype)
        self.model.eval()
        self._lock = threading.Lock()
        self.backend, self.quantize = backend, quantize
        self._onnx = self._load_onnx() if backend == "onnx" else None
        self._cache = ScoreCache(cache_size) if cache_size else None

    def __repr__(self) -> str:
        return (
            f"Reranker({self.model_name!r}, device={str(self.device)!r}, "
            f"dtype={str(self.dtype).replace('torch.', '')!r}, max_length={self.max_length})"
        )

    # ------------------------------------------------------------------ public API

    def compute_score(
        self,
        sentence_pairs: Union[Pair, Sequence[Pair]],
        normalize: bool = False,
        batch_size: Optional[int] = None,
    ) -> Union[float, List[float]]:
        """Score one ``[query, passage]`` pair (→ float) or a list of pairs (→ list, input order).

        Raw logits by default, as ``FlagReranker.compute_score``; ``normalize=True`` applies a
        sigmoid so scores lie in (0, 1).

        >>> rr.compute_score([["q", "p1"], ["q", "p2"]], normalize=True)  # doctest: +SKIP
        [0.0003, 0.9948]
        """
        single, pairs = as_pairs(sentence_pairs)
        scores = self._score(pairs, normalize, batch_size)
        return scores[0] if single else scores

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: Optional[int] = None,
        threshold: Optional[float] = None,
        normalize: bool = True,
        batch_size: Optional[int] = None,
    ) -> List[RankedDocument]:
        """Rerank ``documents`` for ``query``, best first.

        Scores are sigmoid-normalized unless ``normalize=False``; ``threshold`` drops documents
        scoring below it (on the score as returned), then ``top_k`` keeps the best ``top_k``.
        Ties keep input order.

        >>> hits = rr.rank("what is panda?", docs, top_k=3, threshold=0.5)  # doctest: +SKIP
        >>> hits[0].index, hits[0].score, hits[0].text                      # doctest: +SKIP
        """
        check_query(query)
        texts = check_documents(documents)
        validate_top_k(top_k)
        if not texts or top_k == 0:
            return []
        scores = self._score([(query, text) for text in texts], normalize, batch_size)
        return select(scores, texts, top_k=top_k, threshold=threshold)

    def rank_many(
        self,
        queries: Sequence[str],
        documents_per_query: Sequence[Sequence[str]],
        top_k: Optional[int] = None,
        threshold: Optional[float] = None,
        normalize: bool = True,
        batch_size: Optional[int] = None,
    ) -> List[List[RankedDocument]]:
        """Rerank several queries' documents at once: ``result[i]`` equals ``rank(queries[i], ...)``.

        All pairs of all queries share the same length-sorted batches, so many small requests
        cost fewer forward passes than one ``rank`` call each.

        >>> rr.rank_many(["q1", "q2"], [["a", "b"], ["c"]], top_k=1)  # doctest: +SKIP
        [[RankedDocument(index=1, ...)], [RankedDocument(index=0, ...)]]
        """
        if isinstance(queries, str) or not isinstance(queries, Sequence):
            raise TypeError(f"queries must be a list of str, got {type(queries).__name__}")
        if len(queries) != len(documents_per_query):
            raise ValueError(
                f"queries has {len(queries)} entries but documents_per_query has "
                f"{len(documents_per_query)}; pass one list of documents per query"
            )
        validate_top_k(top_k)
        all_texts = []
        for query, documents in zip(queries, documents_per_query):
            check_query(query)
            all_texts.append(check_documents(documents))
        pairs = [(q, t) for q, texts in zip(queries, all_texts) for t in texts]
        scores = self._score(pairs, normalize, batch_size) if top_k != 0 else []
        results, start = [], 0
        for texts in all_texts:
            if top_k == 0:
                results.append([])
                continue
            own = scores[start : start + len(texts)]
            start += len(texts)
            results.append(select(own, texts, top_k=top_k, threshold=threshold))
        return results

    # ------------------------------------------------------------------ scoring

    def _score(
        self,
        pairs: Sequence[tuple],
        normalize: bool,
        batch_size: Optional[int],
        use_cache: bool = True,
    ) -> List[float]:
        if not pairs:
            return []
        if use_cache and self._cache is not None:
            scores = self._cache.scores(
                self._cache_identity(),
                pairs,
                lambda todo: self._score(todo, False, batch_size, use_cache=False),
            )
            return [sigmoid(s) for s in scores] if normalize else scores
        batch_size = self.batch_size if batch_size is None else batch_size
        # Pairs are encoded and scored a chunk at a time: memory stays bounded by the chunk and
        # the batch however many pairs come in (a chunk is sorted by length for the batches).
        chunk = max(CHUNK_BATCHES * batch_size, MIN_CHUNK)
        scores: List[float] = []
        with tqdm(
            total=len(pairs), desc="Reranking", unit="pair", disable=not self.show_progress_bar
        ) as bar:
            for start in range(0, len(pairs), chunk):
                scores.extend(self._score_chunk(pairs[start : start + chunk], batch_size, bar))
        if normalize:
            scores = [sigmoid(s) for s in scores]
        return scores

    def _score_chunk(self, pairs: Sequence[tuple], batch_size: int, bar) -> List[float]:
        queries, passages = [q for q, _ in pairs], [p for _, p in pairs]
        owners = None
        if self.long_documents == "maxp":
            features, owners = self.encoder.encode_windows(queries, passages, self.stride)
        else:
            features = self.encoder.encode(queries, passages)
        batches = plan_batches([len(f["input_ids"]) for f in features], batch_size)
        batch_scores = []
        for batch in batches:
            batch_scores.append(self._score_features([features[i] for i in batch]))
            if owners is None:
                bar.update(len(batch))
        scores = restore_order(batches, batch_scores)
        if owners is not None:
            scores = max_per_document(scores, owners, len(pairs))
            bar.update(len(pairs))
        return scores

    def _score_features(self, features: List[Feature]) -> List[float]:
        """Score one batch; on accelerator out-of-memory, split it in halves and retry."""
        try:
            return self._forward(features)
        except RuntimeError as error:
            if not is_out_of_memory(error) or len(features) == 1:
                raise
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            warn_once(
                "oom-split",
                f"out of memory on {self.device} for a batch of {len(features)} pairs; splitting "
                "batches that do not fit (pass a smaller batch_size to avoid the retries).",
            )
            half = len(features) // 2
            return self._score_features(features[:half]) + self._score_features(features[half:])

    def _forward(self, features: List[Feature]) -> List[float]:
        padding_side = "right" if self.prompt_format is None else "left"  # decoders read the end
        batch = collate(features, self._pad_id(), padding_side=padding_side)
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        try:
            logits = self._logits(batch)
        except RuntimeError as error:
            if is_out_of_memory(error) or self.dtype == torch.float32:
                raise
            self._fall_back_to_fp32(error)
            logits = self._logits(batch)
        return self._head_scores(logits).tolist()

    def _logits(self, batch) -> torch.Tensor:
        if self._onnx is not None:
            return self._onnx.logits(batch)
        with torch.inference_mode():
            if self.prompt_format is not None:
                return llm.label_logits(self.model, batch, self.encoder.label_token_ids)
            return self.model(**batch).logits.float()

    def _head_scores(self, logits: torch.Tensor) -> torch.Tensor:
        if self.num_labels == 1:
            return logits[:, 0]
        return logits[:, 1] - logits[:, 0]

    def _fall_back_to_fp32(self, error: BaseException) -> None:
        with self._lock:
            if self.dtype == torch.float32:
                return  # another thread already did it
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            warn_once(
                f"fp32-fallback-{self.device.type}",
                f"a {str(self.dtype).replace('torch.', '')} forward failed on {self.device} "
                f"({type(error).__name__}: {reason}); crossrank switched this model to float32 and "
                "its scores are correct. Pass use_fp16=False to start in float32.",
            )
            # Reload rather than upcast: upcasting keeps the weights' half-precision rounding.
            _, model = _load(self.model_name, self._trust_remote_code)
            self.model = model.to(device=self.device, dtype=torch.float32).eval()
            self.dtype = torch.float32

    def _load_onnx(self):
        """Export (or reuse the cached export of) the model for onnxruntime; free the torch weights."""
        from .backends.onnx import OnnxModel, onnx_file

        if self.prompt_format is not None:
            raise ValueError(
                "backend='onnx' runs cross-encoders (*ForSequenceClassification); "
                f"model={self.model_name!r} is a decoder LLM reranker: use backend='torch'"
            )
        path = onnx_file(self.model, self.encoder, self.model_name, self.quantize, self._pad_id())
        self.model.to("meta")  # the session holds its own copy; keep the config, drop the weights
        return OnnxModel(path)

    def _cache_identity(self) -> tuple:
        """Everything besides the texts that changes a score (dtype changes on fp32 fallback)."""
        return (
            self.model_name,
            self.backend,
            self.quantize,
            str(self.dtype),
            self.max_length,
            getattr(self.encoder, "query_max_length", None),
            getattr(self.encoder, "instruction", None),
            self.long_documents,
            self.stride,
        )

    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return 0 if pad is None else pad
