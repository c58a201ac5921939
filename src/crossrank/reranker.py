"""The reranker: load a cross-encoder or a decoder LLM reranker, score, rank."""

from __future__ import annotations

import math
import os
import threading
from typing import List, Optional, Sequence, Union

import torch
from tqdm.auto import tqdm

from . import llm
from .batching import collate, plan_batches, restore_order
from .cache import ScoreCache
from .devices import (
    DeviceLike,
    DTypeLike,
    choose_dtype,
    is_out_of_memory,
    parse_dtype,
    resolve_device,
    warn_once,
)
from .encoding import Feature, PairEncoder
from .results import RankedDocument, select, validate_top_k
from .windows import LONG_DOCUMENT_MODES, max_per_document

DEFAULT_MODEL = "BAAI/bge-reranker-base"
Pair = Union[Sequence[str], tuple]


class ModelLoadError(OSError):
    """The model could not be loaded (missing path, unreachable hub, not a cross-encoder)."""


class Reranker:
    """A cross-encoder reranker for any Hugging Face ``*ForSequenceClassification`` checkpoint.

    Scores match FlagEmbedding's ``FlagReranker`` on the same weights: the query is capped at
    3/4 of ``max_length`` and the passage truncated to fit. A 1-logit head scores with its logit,
    a 2-logit head with ``logit[1] - logit[0]``.

    Decoder LLM rerankers (a ``*ForCausalLM`` checkpoint) are scored from the next-token logits
    with the prompt their family was trained with (see :mod:`crossrank.llm`): Qwen3-Reranker with
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
        _check_long_document_options(long_documents, stride)
        _check_llm_options(instruction, prompt_format)
        _check_speed_options(backend, quantize, cache_size)
        self.device = resolve_device(device)
        if backend == "onnx":
            self.device = _onnx_device(device, self.device, dtype)
        self.dtype = choose_dtype(self.device, use_fp16, dtype)
        self.model_name = os.fspath(model) if isinstance(model, os.PathLike) else model
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar
        self._trust_remote_code = trust_remote_code
        self.long_documents = long_documents
        self.stride = stride
        self.tokenizer, self.model = _load(self.model_name, trust_remote_code)
        self.prompt_format = _prompt_format(
            self.model, self.tokenizer, prompt_format, instruction, self.model_name
        )  # None for a cross-encoder
        self.max_length = _cap_max_length(max_length, self.tokenizer, self.model)
        if self.prompt_format is None:
            self.num_labels = _check_head(self.model, self.model_name)
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
        single, pairs = _as_pairs(sentence_pairs)
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
        _check_query(query)
        texts = _check_documents(documents)
        validate_top_k(top_k)
        if not texts or top_k == 0:
            return []
        scores = self._score([(query, text) for text in texts], normalize, batch_size)
        return select(scores, texts, top_k=top_k, threshold=threshold)

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
            return [_sigmoid(s) for s in scores] if normalize else scores
        batch_size = self.batch_size if batch_size is None else batch_size
        queries, passages = [q for q, _ in pairs], [p for _, p in pairs]
        owners = None
        if self.long_documents == "maxp":
            features, owners = self.encoder.encode_windows(queries, passages, self.stride)
        else:
            features = self.encoder.encode(queries, passages)
        batches = plan_batches([len(f["input_ids"]) for f in features], batch_size)
        batch_scores = []
        with tqdm(
            total=len(features), desc="Reranking", unit="pair", disable=not self.show_progress_bar
        ) as bar:
            for batch in batches:
                batch_scores.append(self._score_features([features[i] for i in batch]))
                bar.update(len(batch))
        scores = restore_order(batches, batch_scores)
        if owners is not None:
            scores = max_per_document(scores, owners, len(pairs))
        if normalize:
            scores = [_sigmoid(s) for s in scores]
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
        from .onnx_backend import OnnxModel, onnx_file

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


# ---------------------------------------------------------------------- loading


def _looks_like_path(name: str) -> bool:
    return (
        os.path.isabs(name)
        or name.startswith((".", "~"))
        or name.endswith(("/", os.sep))
        or name.count("/") > 1
        or (os.sep != "/" and os.sep in name)
    )


def _load(model: str, trust_remote_code: bool):
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    if not isinstance(model, str) or not model.strip():
        raise TypeError(f"model must be a hub id or a local directory path, got {model!r}")
    local = os.path.isdir(os.path.expanduser(model))
    if not local and _looks_like_path(model):
        raise ModelLoadError(
            f"model={model!r}: no such directory. Pass a directory that holds a Hugging Face "
            "checkpoint (config.json, weights, tokenizer files) or a hub id like "
            f"{DEFAULT_MODEL!r}."
        )
    path = os.path.expanduser(model) if local else model

    def from_pretrained(**kwargs):
        tokenizer = AutoTokenizer.from_pretrained(
            path, trust_remote_code=trust_remote_code, **kwargs
        )
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
        model_class = (
            AutoModelForCausalLM if llm.is_causal_lm(config) else AutoModelForSequenceClassification
        )
        hf_model = model_class.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
        return tokenizer, hf_model

    try:
        if local:
            return from_pretrained()
        try:  # the local cache first: no network round trips when the model is already here
            return from_pretrained(local_files_only=True)
        except (OSError, ValueError):
            pass
        endpoint = _unreachable_hub()
        if endpoint:
            raise ModelLoadError(
                f"cannot load model={model!r}: it is not in the local Hugging Face cache and the hub "
                f"({endpoint}) is unreachable. Offline, pass a local checkpoint directory "
                "(CLI: --model PATH)."
            )
        return from_pretrained()
    except (OSError, ValueError) as error:
        if isinstance(error, ModelLoadError):
            raise
        where = "the local directory" if local else "the Hugging Face hub or its local cache"
        raise ModelLoadError(
            f"could not load model={model!r} from {where} ({_first_line(error)}). "
            "Offline, pass a local checkpoint directory (CLI: --model PATH)."
        ) from error


def _unreachable_hub() -> Optional[str]:
    """The hub's host when it cannot be reached (so loading would only retry and fail), else None.

    Behind a proxy the direct check says nothing, so it is skipped.
    """
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except Exception:  # pragma: no cover - very old huggingface_hub
        endpoint = "https://huggingface.co"
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=5):
            return None
    except OSError:
        return host


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def _check_head(model, name: str) -> int:
    num_labels = getattr(model.config, "num_labels", None)
    if num_labels not in (1, 2):
        raise ModelLoadError(
            f"model={name!r} has a classification head with {num_labels} outputs; a cross-encoder "
            "reranker needs 1 (relevance logit) or 2 (not relevant / relevant)."
        )
    return num_labels


def _prompt_format(model, tokenizer, prompt_format, instruction, name: str) -> Optional[str]:
    """The decoder LLM prompt family of ``model``; None for a cross-encoder."""
    if llm.is_causal_lm(model.config):
        return llm.detect_prompt_format(model.config, tokenizer, prompt_format, name)
    for argument, value in (("instruction", instruction), ("prompt_format", prompt_format)):
        if value is not None:
            raise ValueError(
                f"{argument}= applies to decoder LLM rerankers (Qwen3-Reranker, "
                f"bge-reranker-v2-gemma); model={name!r} is a cross-encoder, leave it out"
            )
    return None


def _cap_max_length(max_length: int, tokenizer, model) -> int:
    limits = [getattr(tokenizer, "model_max_length", None)]
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions and getattr(model.config, "model_type", "") in (
        "roberta",
        "xlm-roberta",
        "camembert",
    ):
        positions -= 2  # RoBERTa-style position ids start after the padding index
    limits.append(positions)
    cap = min([m for m in limits if isinstance(m, int) and 0 < m < 1_000_000], default=max_length)
    if max_length > cap:
        warn_once(
            f"max-length-{cap}",
            f"max_length={max_length} is more than this model accepts ({cap} tokens); using {cap}.",
        )
        return cap
    return max_length


# ---------------------------------------------------------------------- input checks


def _check_long_document_options(long_documents, stride) -> None:
    if long_documents not in LONG_DOCUMENT_MODES:
        raise ValueError(f"long_documents must be 'truncate' or 'maxp', got {long_documents!r}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 0:
        raise ValueError(
            f"stride must be an int >= 0 (tokens shared by consecutive windows), got {stride!r}"
        )


def _check_speed_options(backend, quantize, cache_size) -> None:
    if backend not in ("torch", "onnx"):
        raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    if backend == "onnx":
        from .onnx_backend import require_onnxruntime

        require_onnxruntime()  # before the model loads: a missing extra fails fast
    if quantize is not None and backend != "onnx":
        raise ValueError(
            f"quantize={quantize!r} needs backend='onnx' (pip install crossrank[onnx]); "
            "the torch backend runs the model as loaded"
        )
    if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
        raise ValueError(
            f"cache_size must be an int >= 0 (0 turns the cache off), got {cache_size!r}"
        )


def _onnx_device(requested, resolved: torch.device, dtype) -> torch.device:
    """backend='onnx' runs on CPU in float32: 'auto' means CPU, anything else is an error."""
    if dtype is not None and parse_dtype(dtype) != torch.float32:
        raise ValueError(
            f"backend='onnx' runs float32 (or int8 with quantize='int8'), got dtype={dtype!r}"
        )
    if resolved.type == "cpu":
        return resolved
    if requested is None or requested == "auto":
        return torch.device("cpu")
    raise ValueError(
        f"backend='onnx' runs on CPU (onnxruntime's CPUExecutionProvider), got device={requested!r}; "
        "use device='cpu' or backend='torch'"
    )


def _check_llm_options(instruction, prompt_format) -> None:
    if instruction is not None and (not isinstance(instruction, str) or not instruction.strip()):
        raise ValueError(f"instruction must be a non-empty str or None, got {instruction!r}")
    if prompt_format is not None and prompt_format not in llm.PROMPT_FORMATS:
        raise ValueError(
            f"prompt_format must be one of {llm.PROMPT_FORMATS} or None, got {prompt_format!r}"
        )


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _check_query(query) -> None:
    if query is None or not isinstance(query, str):
        raise TypeError(f"query must be a non-empty str, got {type(query).__name__}")
    if not query.strip():
        raise ValueError("query is empty; pass the question or search text to rank documents for")


def _check_documents(documents) -> List[str]:
    if documents is None or isinstance(documents, (str, bytes)):
        raise TypeError(
            "documents must be a list of str (one entry per document), "
            f"got {type(documents).__name__}"
        )
    try:
        texts = list(documents)
    except TypeError:
        raise TypeError(
            f"documents must be a list of str, got {type(documents).__name__}"
        ) from None
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"documents[{i}] is {type(text).__name__}, expected str; pass document texts "
                "(e.g. [d.page_content for d in docs])"
            )
    return texts


def _is_pair(item) -> bool:
    return (
        isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(s, str) for s in item)
    )


def _as_pairs(sentence_pairs) -> tuple:
    """→ (single, list of (query, passage)) with a clear error for anything else."""
    if (
        sentence_pairs is None
        or isinstance(sentence_pairs, (str, bytes))
        or not isinstance(sentence_pairs, (list, tuple))
    ):
        raise TypeError(
            "sentence_pairs must be a [query, passage] pair or a list of such pairs, "
            f"got {type(sentence_pairs).__name__}"
        )
    if len(sentence_pairs) == 0:
        return False, []
    if isinstance(sentence_pairs[0], str):
        if not _is_pair(sentence_pairs):
            raise TypeError(
                "sentence_pairs looks like one pair but is not two strings: pass "
                "[query, passage] or a list of [query, passage] pairs"
            )
        return True, [tuple(sentence_pairs)]
    pairs = []
    for i, item in enumerate(sentence_pairs):
        if not _is_pair(item):
            raise TypeError(
                f"sentence_pairs[{i}] must be a [query, passage] pair of two str, got {item!r:.80}"
            )
        pairs.append((item[0], item[1]))
    return False, pairs
