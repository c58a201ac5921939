"""The reranker: settings → checkpoint → model family → backend → pipeline; compute_score and rank."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Union

import torch

from .backends import get_backend
from .cache import ScoreCache
from .calibration.model import load_calibration
from .devices import DeviceLike, DTypeLike, share_cpu_threads
from .families import detect_family
from .inputs import (
    as_pairs,
    check_documents,
    check_first_stage_lists,
    check_first_stage_scores,
    check_normalize,
    check_passage_token_limits,
    check_query,
    sequence_of_queries,
)
from .loading import cap_max_length, open_checkpoint
from .pipeline import Pipeline, Request, ScoringStats, per_query, query_pairs
from .results import RankedDocument, Selection, activate
from .settings import DEFAULTS, Settings, dtype_name

Pair = Union[Sequence[str], tuple]
# Settings that do not change a score may be assigned on a live reranker.
_ASSIGNABLE = ("batch_size", "show_progress_bar")


class Reranker:
    """A reranker for any Hugging Face cross-encoder or decoder LLM reranker checkpoint.

    Scores match FlagEmbedding's ``FlagReranker`` on the same weights: the query is capped at
    3/4 of ``max_length`` and the passage truncated to fit. A 1-logit head scores with its logit,
    a 2-logit head with ``logit[1] - logit[0]``. Decoder LLM rerankers (a ``*ForCausalLM``
    checkpoint) are scored from next-token logits with their family's prompt
    (see :mod:`crossrank.families.decoder`), as FlagEmbedding's ``FlagLLMReranker``.

    Args:
        model: a hub id (``"BAAI/bge-reranker-base"``) or a local checkpoint directory.
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``;
            or a list such as ``["cuda:0", "cuda:1"]``: one replica per device, the batches of
            each call spread over them (``["cpu", "cpu"]`` splits the CPU's threads).
        use_fp16: half precision where the device does it well; ``None`` (default) means yes on
            CUDA/MPS and no on CPU, where ``True`` is ignored with a note.
        dtype: force ``"float32"``, ``"float16"`` or ``"bfloat16"`` on any device.
        max_length: tokens per (query, passage) pair; ``None`` (default) means the length the
            checkpoint was trained at when ``crossrank train`` made it (its
            ``crossrank-run.json``), else 512. Capped by the model's own limit.
        query_max_length: tokens kept of the query (default ``max_length * 3 // 4``).
        batch_size: pairs per batch for the longest pairs; shorter pairs share the same token budget.
            Pairs are encoded and scored 16 batches (at least 256 pairs) at a time, so memory
            does not grow with the number of pairs in a call.
        show_progress_bar: show a tqdm bar while scoring (and transformers' bar while loading).
        trust_remote_code: passed to ``from_pretrained`` for checkpoints with custom code.
        instruction: decoder LLM rerankers only: the task instruction; ``None`` keeps the default.
        long_documents: ``"truncate"`` (default) cuts a passage that does not fit next to the
            query; ``"maxp"`` scores overlapping token windows and keeps the best.
        stride: with ``"maxp"``, tokens shared by consecutive windows (at most half a window).
        prompt_format: decoder LLM rerankers only: ``"qwen3"``, ``"bge"`` or ``"mxbai"``
            (mxbai-rerank-v2) where the model type does not tell (a checkpoint whose prompt it
            does not tell is refused without one).
        backend: ``"torch"`` (default), ``"onnx"`` (ONNX Runtime on CPU, cross-encoders only;
            ``pip install crossrank[onnx]``) or ``"openvino"`` (OpenVINO on CPU, float32 or
            bfloat16; ``pip install crossrank[openvino]``), exported once and cached next to the
            model.
        quantize: ``"int8"`` with ``backend="openvino"`` (static int8 through OpenVINO's NNCF,
            calibrated once on built-in pairs and cached; the fastest CPU path on AVX512-VNNI
            CPUs) or with ``backend="onnx"`` (ONNX Runtime's dynamic int8, no calibration).
        cache_size: keep the raw scores of this many (query, passage) pairs; 0 (default) is off.
        calibration: ``None`` (default), ``"auto"`` (the model directory's
            ``crossrank_calibration.json`` when present) or a path to one (``crossrank
            calibrate``): normalized scores become calibrated probabilities of relevance.

    Example:
        >>> rr = Reranker("BAAI/bge-reranker-base")                      # doctest: +SKIP
        >>> rr.compute_score(["what is panda?", "The giant panda is a bear."])  # doctest: +SKIP
        5.26
        >>> [d.index for d in rr.rank("what is panda?", ["hi", "The giant panda ..."])]  # doctest: +SKIP
        [1, 0]

    The settings are read-only (``rr.settings``, a frozen :class:`~crossrank.settings.Settings`):
    build a new ``Reranker`` for others, or pass ``max_length=``/``query_max_length=`` to one
    ``compute_score`` call. One instance can be shared between threads.
    """

    def __init__(
        self,
        model: Union[str, os.PathLike] = DEFAULTS["model"],
        *,
        device: Union[DeviceLike, Sequence[DeviceLike]] = DEFAULTS["device"],
        use_fp16: Optional[bool] = DEFAULTS["use_fp16"],
        dtype: DTypeLike = DEFAULTS["dtype"],
        max_length: Optional[int] = DEFAULTS["max_length"],
        query_max_length: Optional[int] = DEFAULTS["query_max_length"],
        batch_size: int = DEFAULTS["batch_size"],
        show_progress_bar: bool = DEFAULTS["show_progress_bar"],
        trust_remote_code: bool = DEFAULTS["trust_remote_code"],
        instruction: Optional[str] = DEFAULTS["instruction"],
        long_documents: str = DEFAULTS["long_documents"],
        stride: int = DEFAULTS["stride"],
        prompt_format: Optional[str] = DEFAULTS["prompt_format"],
        backend: str = DEFAULTS["backend"],
        quantize: Optional[str] = DEFAULTS["quantize"],
        cache_size: int = DEFAULTS["cache_size"],
        calibration: Optional[Union[str, os.PathLike]] = DEFAULTS["calibration"],
        compile: bool = DEFAULTS["compile"],
    ) -> None:
        settings = Settings.create(
            model,
            device=device,
            use_fp16=use_fp16,
            dtype=dtype,
            backend=backend,
            max_length=max_length,
            query_max_length=query_max_length,
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
            trust_remote_code=trust_remote_code,
            instruction=instruction,
            long_documents=long_documents,
            stride=stride,
            prompt_format=prompt_format,
            quantize=quantize,
            cache_size=cache_size,
            calibration=os.fspath(calibration)
            if isinstance(calibration, os.PathLike)
            else calibration,
            compile=compile,
        )
        runtime = get_backend(settings.backend)
        runtime.require(settings.quantize)  # before anything loads: a missing extra fails fast
        checkpoint = open_checkpoint(settings.model, settings.trust_remote_code)
        family = detect_family(
            checkpoint, prompt_format=settings.prompt_format, instruction=settings.instruction
        )
        runtime.check_family(family)  # before any weights load
        settings = settings.replace(
            max_length=cap_max_length(settings.max_length, checkpoint.tokenizer, checkpoint.config),
            prompt_format=getattr(family, "prompt_format", None),
        )
        family.encoder(settings.max_length, settings.query_max_length)  # lengths fit the prompt?
        self._calibration = load_calibration(settings.calibration, settings.model)
        self._settings = settings
        self._family = family
        self._backends = runtime.build(settings, family, checkpoint, self._on_dtype_change)
        self._backend = self._backends[0]
        if len(self._backends) > 1 and settings.device.type == "cpu":
            share_cpu_threads(len(self._backends))
        self._pipeline = Pipeline(family, self._backends)
        self._cache = ScoreCache(settings.cache_size) if settings.cache_size else None

    # ------------------------------------------------------------------ settings

    @property
    def settings(self) -> Settings:
        """The frozen, validated settings this reranker runs with (also the score-cache key)."""
        return self._settings

    model_name = property(lambda self: self._settings.model, doc="Hub id or local directory.")
    device = property(lambda self: self._settings.device, doc="The torch device in use.")
    dtype = property(lambda self: self._settings.dtype, doc="The compute dtype in use.")
    max_length = property(lambda self: self._settings.max_length, doc="Tokens per pair.")
    long_documents = property(lambda self: self._settings.long_documents)
    stride = property(lambda self: self._settings.stride)
    backend = property(lambda self: self._settings.backend, doc='"torch" or "onnx".')
    quantize = property(lambda self: self._settings.quantize)
    prompt_format = property(lambda self: self._settings.prompt_format)
    tokenizer = property(lambda self: self._family.tokenizer, doc="The checkpoint's tokenizer.")
    model = property(lambda self: self._backend.model, doc="The torch model (meta with ONNX).")
    family = property(lambda self: self._family.name, doc='"cross-encoder" or a decoder family.')
    calibration = property(lambda self: self._calibration, doc="The calibration in use, or None.")

    @property
    def model_family(self):
        """The :class:`~crossrank.families.base.ModelFamily` object (``family`` is its name)."""
        return self._family

    @property
    def encoder(self):
        """The pair encoder for the reranker's own lengths."""
        return self._family.encoder(self._settings.max_length, self._settings.query_max_length)

    @property
    def batch_size(self) -> int:
        return self._settings.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._settings = self._settings.replace(batch_size=value)  # checked; scores unchanged

    @property
    def show_progress_bar(self) -> bool:
        return self._settings.show_progress_bar

    @show_progress_bar.setter
    def show_progress_bar(self, value: bool) -> None:
        self._settings = self._settings.replace(show_progress_bar=value)

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_") and name not in _ASSIGNABLE:
            if name in Settings.__dataclass_fields__ or name in ("model_name", "settings"):
                raise AttributeError(
                    f"Reranker.{name} is read-only: it changes scores, so it is fixed when the "
                    f"model loads. Build Reranker(..., {name}=...) for another value"
                    + (
                        f", or pass {name}= to one compute_score call"
                        if name in ("max_length", "query_max_length")
                        else ""
                    )
                    + "."
                )
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        extra = f", calibration={self._calibration.describe()!r}" if self._calibration else ""
        return (
            f"Reranker({self.model_name!r}, device={str(self.device)!r}, "
            f"dtype={dtype_name(self.dtype)!r}, max_length={self.max_length}{extra})"
        )

    def info(self) -> Dict[str, Any]:
        """What runs: model, family, device, dtype, backend, lengths, calibration (JSON-ready)."""
        settings = self._settings
        encoder = self.encoder
        info = {
            "model": settings.model,
            "family": self._family.name,
            "device": str(settings.device),
            "devices": [str(d) for d in settings.devices],
            "dtype": dtype_name(settings.dtype),
            "backend": settings.backend,
            "quantize": settings.quantize,
            "max_length": settings.max_length,
            "query_max_length": encoder.query_max_length,
            "batch_size": settings.batch_size,
            "long_documents": settings.long_documents,
            "prompt_format": settings.prompt_format,
            "calibration": self._calibration.describe() if self._calibration else None,
            "cache_size": settings.cache_size,
            "compile": settings.compile,
        }
        path = getattr(self._backend, "path", None)
        if path is not None:
            info["onnx_file"] = os.fspath(path)
        return info

    def stats(self) -> Dict[str, Any]:
        """Work done so far: forward passes, pairs scored, and the score cache's hits/misses."""
        pipeline: ScoringStats = self._pipeline.stats
        cache = self._cache
        return {
            "forward_passes": pipeline.forward_passes,
            "forward_passes_per_device": list(self._pipeline.batches_per_backend),
            "pairs_scored": pipeline.pairs_scored,
            "features_scored": pipeline.features_scored,
            "tokenize_seconds": pipeline.tokenize_seconds,
            "cache_hits": cache.hits if cache else 0,
            "cache_misses": cache.misses if cache else 0,
            "cache_entries": len(cache) if cache else 0,
        }

    def _on_dtype_change(self, dtype: torch.dtype) -> None:
        self._settings = self._settings.replace(dtype=dtype)  # the cache key follows
        for replica in self._backends:  # every replica the same precision, so scores agree
            replica.use_float32()

    # ------------------------------------------------------------------ public API

    def compute_score(
        self,
        sentence_pairs: Union[Pair, Sequence[Pair]],
        normalize: bool = False,
        batch_size: Optional[int] = None,
        max_length: Optional[int] = None,
        query_max_length: Optional[int] = None,
    ) -> Union[float, List[float]]:
        """Score one ``[query, passage]`` pair (→ float) or a list of pairs (→ list, input order).

        Raw logits by default, as ``FlagReranker.compute_score``; ``normalize=True`` gives scores
        in (0, 1) (a sigmoid, or calibrated probabilities with ``calibration=``). ``batch_size``,
        ``max_length`` and ``query_max_length`` override the reranker's own for this call, as
        FlagReranker's per-call options do. Any ordered collection of pairs works (list, tuple,
        NumPy array, pandas Series, a ``datasets`` column).

        >>> rr.compute_score([["q", "p1"], ["q", "p2"]], normalize=True)  # doctest: +SKIP
        [0.0003, 0.9948]
        """
        normalize = check_normalize(normalize)
        request = self._request(batch_size, max_length, query_max_length)
        single, pairs = as_pairs(sentence_pairs)
        raw = self._raw_scores(pairs, request)
        scores = activate(raw, self._calibration) if normalize else raw
        return scores[0] if single else scores

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: Optional[int] = None,
        threshold: Optional[float] = None,
        normalize: bool = True,
        batch_size: Optional[int] = None,
        min_keep: int = 0,
        first_stage_scores: Optional[Sequence[float]] = None,
        fusion: str = "minmax",
        fusion_weight: float = 0.5,
    ) -> List[RankedDocument]:
        """Rerank ``documents`` for ``query``, best first.

        Scores are normalized (sigmoid, or calibrated) unless ``normalize=False``; ``threshold``
        drops documents scoring below it (on the score as returned), but never below
        ``min_keep`` documents; then ``top_k`` keeps the best ``top_k``. Ties on the score follow
        the raw logit, then input order.

        With ``first_stage_scores`` (the retriever's score of each document, in order), results
        are ordered by the reranker's logits fused with them (:mod:`crossrank.fusion`):
        ``fusion="minmax"`` (weighted min-max) or ``"rrf"`` (reciprocal-rank fusion);
        ``fusion_weight`` is the first-stage score's weight (0: the reranker's order, 1: the
        retriever's). ``score`` is then the fused score in [0, 1] (``threshold`` applies to it),
        ``rerank_score`` the reranker's own score and ``first_stage_score`` the one passed in.
        Without ``first_stage_scores`` the fusion options are checked but change nothing.

        >>> hits = rr.rank("what is panda?", docs, top_k=3, threshold=0.5, min_keep=1)  # doctest: +SKIP
        >>> hits[0].index, hits[0].score, hits[0].logit, hits[0].text                   # doctest: +SKIP
        >>> rr.rank("what is panda?", docs, first_stage_scores=bm25, fusion_weight=0.3)  # doctest: +SKIP
        """
        query = check_query(query)
        texts = check_documents(documents)
        first_stage = None
        if first_stage_scores is not None:
            first_stage = [check_first_stage_scores(first_stage_scores, len(texts))]
        selection = Selection(top_k, threshold, min_keep, normalize, fusion, fusion_weight)
        return self._rank_lists([query], [texts], selection, batch_size, first_stage)[0]

    def rank_many(
        self,
        queries: Sequence[str],
        documents_per_query: Sequence[Sequence[str]],
        top_k: Optional[int] = None,
        threshold: Optional[float] = None,
        normalize: bool = True,
        batch_size: Optional[int] = None,
        min_keep: int = 0,
        first_stage_scores: Optional[Sequence[Sequence[float]]] = None,
        fusion: str = "minmax",
        fusion_weight: float = 0.5,
    ) -> List[List[RankedDocument]]:
        """Rerank several queries' documents at once: ``result[i]`` equals ``rank(queries[i], ...)``.

        The pairs of all queries share the same length-sorted batches, so many small requests cost
        fewer forward passes than one ``rank`` call each (this is :meth:`score_many`, then one
        :class:`~crossrank.results.Selection` per query). ``first_stage_scores`` holds one list of
        retriever scores per query (see :meth:`rank`).

        >>> rr.rank_many(["q1", "q2"], [["a", "b"], ["c"]], top_k=1)  # doctest: +SKIP
        [[RankedDocument(index=1, ...)], [RankedDocument(index=0, ...)]]
        """
        queries, texts = sequence_of_queries(queries, documents_per_query)
        first_stage = None
        if first_stage_scores is not None:
            first_stage = check_first_stage_lists(first_stage_scores, [len(t) for t in texts])
        selection = Selection(top_k, threshold, min_keep, normalize, fusion, fusion_weight)
        return self._rank_lists(queries, texts, selection, batch_size, first_stage)

    async def arank(
        self, query: str, documents: Sequence[str], *args: Any, **options: Any
    ) -> List[RankedDocument]:
        """:meth:`rank` with the same arguments, awaited without blocking the event loop.

        The scoring runs in the loop's default executor (torch releases the GIL while it
        computes), as :class:`~crossrank.scorer.Scorer` asks of every scorer.

        >>> hits = await rr.arank("what is panda?", docs, top_k=3)  # doctest: +SKIP
        """
        import asyncio  # here: only async callers need it

        texts = check_documents(documents)  # read here: a generator must not cross threads
        return await asyncio.to_thread(self.rank, query, texts, *args, **options)

    def score_many(
        self,
        queries: Sequence[str],
        documents_per_query: Sequence[Sequence[str]],
        *,
        passage_token_limits: Optional[Sequence[Optional[int]]] = None,
        batch_size: Optional[int] = None,
    ) -> List[List[float]]:
        """Raw scores (logits) of several queries' documents, in input order: one list per query.

        The scoring call beneath :meth:`rank`, :meth:`rank_many` and the service: the pairs of all
        queries are tokenized once, sorted by length once into shared token-budget batches and put
        back in input order once; nothing is normalized or selected (apply a
        :class:`~crossrank.results.Selection` to the result). ``passage_token_limits`` holds one
        optional int per query: that query's passages keep at most that many tokens (Cohere's
        ``max_tokens_per_doc``), cut while they are tokenized; ``max_length`` applies in any case.
        The score cache (``cache_size=``) applies.

        >>> rr.score_many(["q1", "q2"], [["a", "b"], ["c"]], passage_token_limits=[None, 64])  # doctest: +SKIP
        [[-8.19, 5.26], [0.42]]
        """
        queries, texts = sequence_of_queries(queries, documents_per_query)
        limits = check_passage_token_limits(passage_token_limits, len(queries))
        return self._score_lists(queries, texts, limits, self._request(batch_size, None, None))

    # ------------------------------------------------------------------ scoring

    def _rank_lists(self, queries, texts, selection: Selection, batch_size, first_stage=None):
        request = self._request(batch_size, None, None)
        if selection.top_k == 0:
            return [[] for _ in queries]
        logits = self._score_lists(queries, texts, None, request)
        return [
            selection.apply(
                own_logits, own, None if first_stage is None else first_stage[i], self._calibration
            )
            for i, (own, own_logits) in enumerate(zip(texts, logits))
        ]

    def _score_lists(self, queries, texts, limits, request: Request) -> List[List[float]]:
        """Raw scores of each query's texts from one pipeline call over all their pairs."""
        pairs = query_pairs(queries, texts, limits, request)
        return per_query(self._raw_scores(pairs, request), texts)

    def _request(self, batch_size, max_length, query_max_length) -> Request:
        return Request.for_call(
            self._settings, batch_size, max_length, query_max_length, self.tokenizer, self.model
        )

    def _raw_scores(self, pairs: List[tuple], request: Request) -> List[float]:
        if not pairs:
            return []
        if self._cache is None:
            return self._pipeline.score(pairs, request)
        key = self._settings.score_key(request.max_length, request.query_max_length)
        return self._cache.scores(key, pairs, lambda todo: self._pipeline.score(todo, request))

