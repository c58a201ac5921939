"""Drop-in ``FlagReranker`` (and ``FlagLLMReranker``): FlagEmbedding 1.4's API on crossrank's core.

Change ``from FlagEmbedding import FlagReranker`` to ``from crossrank import FlagReranker`` and the
rest of the code runs as before, with the same scores (the same pair encoding, on transformers 4
and 5, without FlagEmbedding's dependencies). Return types follow FlagEmbedding 1.4:

- ``compute_score`` returns a ``list`` of floats, **also for a single pair** (a one-element list:
  FlagEmbedding 1.4 wraps one pair in a list and never unwraps it; its README comment showing a
  bare float dates from earlier versions), and a ``numpy.ndarray`` when several ``devices`` are
  given (its multi-process path concatenates arrays). An empty list gives ``[]`` (FlagEmbedding
  fails).
- Options FlagEmbedding accepts but crossrank cannot honour without changing scores raise a
  ``ValueError`` naming the option; options FlagEmbedding stores without using (such as the
  README's ``passage_max_length``) are kept as attributes with a one-time warning naming them.

>>> from crossrank import FlagReranker
>>> reranker = FlagReranker("BAAI/bge-reranker-v2-m3", use_fp16=True)     # doctest: +SKIP
>>> reranker.compute_score([["what is panda?", "hi"], ["what is panda?", "The giant panda ..."]])
[-8.18..., 5.26...]                                                       # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from ..errors import ModelLoadError, warn_once
from ..reranker import Reranker

Devices = Union[str, int, Sequence[Union[str, int]], None]
Scores = Union[List[float], np.ndarray]

# Weights of other frameworks and exports that a hub repository may hold besides the torch ones.
_OTHER_FORMATS = [
    "*.onnx",
    "onnx/*",
    "openvino/*",
    "*.h5",
    "*.msgpack",
    "*.ot",
    "*.gguf",
    "*.tflite",
]


def target_devices(devices: Devices) -> List[str]:
    """FlagEmbedding's ``devices`` → a list of crossrank device strings (``["auto"]`` for None).

    ``0`` and ``"0"`` mean ``"cuda:0"``, as in FlagEmbedding; ``None`` picks one device
    (CUDA, then MPS, then CPU) where FlagEmbedding would take every CUDA device.
    """

    def one(device) -> str:
        if isinstance(device, bool) or not isinstance(device, (str, int)):
            raise TypeError(
                "devices must be a str, an int or a list of them (e.g. 'cuda:0', 0, ['cpu']), "
                f"got {device!r}"
            )
        if isinstance(device, int) or device.isdigit():
            return f"cuda:{device}"
        return device

    if devices is None:
        return ["auto"]
    if isinstance(devices, (str, int)):
        return [one(devices)]
    if not isinstance(devices, Sequence) or len(devices) == 0:
        raise ValueError(
            f"devices must be a device or a non-empty list of devices, got {devices!r}"
        )
    return [one(device) for device in devices]


def resolve_cache_dir(model: str, cache_dir: Optional[str]) -> str:
    """The checkpoint directory of hub id ``model`` inside ``cache_dir`` (downloaded if missing).

    transformers' ``from_pretrained(cache_dir=...)`` does the same; a local directory is used as is.
    """
    if cache_dir is None or os.path.isdir(os.path.expanduser(model)):
        return model
    from huggingface_hub import snapshot_download

    cache_dir = os.fspath(cache_dir)
    try:
        return snapshot_download(model, cache_dir=cache_dir, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached there yet: download it below
        pass
    try:
        return snapshot_download(model, cache_dir=cache_dir, ignore_patterns=_OTHER_FORMATS)
    except Exception as error:  # noqa: BLE001 - offline, unknown repo, gated, ...
        raise ModelLoadError(
            f"could not load model_name_or_path={model!r} into cache_dir={cache_dir!r} "
            f"({type(error).__name__}: {str(error).strip().splitlines()[0][:200] if str(error).strip() else ''}). "
            "Offline, pass a local checkpoint directory."
        ) from error


def _instruct(template: str, instruction: str, text: str) -> str:
    """FlagEmbedding's ``get_detailed_instruct``: a literal ``\\n`` in the template is a newline."""
    return template.replace("\\n", "\n").format(instruction, text)


class _FlagBase:
    """What FlagReranker and FlagLLMReranker share: devices, options, compute_score's plumbing."""

    _cls_name = "FlagReranker"

    def _set_instructions(self, query: Optional[str], query_format: str,
                          passage: Optional[str], passage_format: str) -> None:  # fmt: skip
        """Keep the instructions under FlagEmbedding's attribute names."""
        self.query_instruction_for_rerank = query
        self.query_instruction_format = query_format
        self.passage_instruction_for_rerank = passage
        self.passage_instruction_format = passage_format

    def _setup(self, model_name_or_path, cache_dir, devices, batch_size, max_length,
               query_max_length, normalize, extra: Dict[str, Any], **core) -> None:  # fmt: skip
        model_name_or_path = resolve_cache_dir(model_name_or_path, cache_dir)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(normalize, bool):
            raise TypeError(f"normalize must be True or False, got {normalize!r}")
        self.model_name_or_path = model_name_or_path
        self.target_devices = target_devices(devices)
        self.batch_size, self.max_length = batch_size, max_length
        self.query_max_length, self.normalize = query_max_length, normalize
        self._keep_unused_options(extra)
        several = len(self.target_devices) > 1  # one replica per device, in this process
        self.reranker = Reranker(
            model_name_or_path,
            device=self.target_devices if several else self.target_devices[0],
            batch_size=batch_size,
            max_length=max_length,
            query_max_length=query_max_length,
            **core,
        )

    def _keep_unused_options(self, extra: Dict[str, Any]) -> None:
        """FlagEmbedding keeps unknown keyword options as attributes and never reads them."""
        for name, value in extra.items():
            if hasattr(self, name) or hasattr(type(self), name):
                raise TypeError(f"{self._cls_name}() got an option {name!r} that it cannot take")
            setattr(self, name, value)
        if extra:
            names = ", ".join(sorted(extra))
            warn_once(
                f"flag-unused-{self._cls_name}-{names}",
                f"{self._cls_name}: {names} is not used (FlagEmbedding stores such options "
                "without reading them, so scores are unchanged); max_length caps query + passage.",
                stacklevel=5,  # the caller's FlagReranker(...) line
            )

    # ------------------------------------------------------------------ FlagEmbedding attributes

    @property
    def model(self):
        """The loaded transformers model, as FlagEmbedding's ``reranker.model``."""
        return self.reranker.model

    @property
    def tokenizer(self):
        return self.reranker.tokenizer

    def stop_self_pool(self) -> None:
        """Kept for code that calls it: crossrank starts no process pool, so there is none to stop."""

    # ------------------------------------------------------------------ scoring

    def _pairs(self, sentence_pairs) -> list:
        if isinstance(sentence_pairs, (str, bytes)) or not isinstance(
            sentence_pairs, (list, tuple)
        ):
            raise TypeError(
                "sentence_pairs must be a [query, passage] pair or a list of such pairs, "
                f"got {type(sentence_pairs).__name__}"
            )
        if len(sentence_pairs) and isinstance(sentence_pairs[0], str):
            sentence_pairs = [sentence_pairs]  # one pair: still a list back, as FlagEmbedding 1.4
        return self._detailed(list(sentence_pairs))

    def _detailed(self, pairs: list) -> list:
        return pairs

    def _score(self, sentence_pairs, batch_size, query_max_length, max_length, normalize,
               kwargs: Dict[str, Any]) -> Scores:  # fmt: skip
        if kwargs:  # the options compute_score() takes as **kwargs
            raise TypeError(
                f"compute_score() got {', '.join(sorted(kwargs))}: FlagEmbedding passes "
                "such options to the tokenizer, which would change scores; crossrank does not take them"
            )
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
        if normalize is not None and not isinstance(normalize, bool):
            raise TypeError(f"normalize must be True, False or None, got {normalize!r}")
        pairs = self._pairs(sentence_pairs)
        lengths = self._lengths(max_length, query_max_length)
        normalize = self.normalize if normalize is None else normalize
        scores = (
            self.reranker.compute_score(
                pairs, normalize=normalize, batch_size=batch_size, **lengths
            )
            if pairs
            else []
        )
        return np.asarray(scores, dtype=np.float64) if len(self.target_devices) > 1 else scores

    def _lengths(self, max_length, query_max_length) -> Dict[str, int]:
        """Per-call lengths resolved as FlagEmbedding does: the query keeps 3/4 unless told."""
        if max_length is None and query_max_length is None:
            return {}
        max_length = self.max_length if max_length is None else max_length
        if query_max_length is None:
            query_max_length = self.query_max_length or max_length * 3 // 4
        return {"max_length": max_length, "query_max_length": query_max_length}


class FlagReranker(_FlagBase):
    """FlagEmbedding 1.4's ``FlagReranker`` (cross-encoders such as bge-reranker-base/-v2-m3).

    Same constructor and ``compute_score`` as FlagEmbedding's; scores equal its scores. The crossrank
    :class:`~crossrank.Reranker` behind it is ``self.reranker`` (``rank``, ``rank_many``, ...).

    Args:
        model_name_or_path: hub id or local checkpoint directory.
        use_fp16: float16 on CUDA/MPS; ignored on CPU (as FlagEmbedding does).
        query_instruction_for_rerank, query_instruction_format: text put before each query,
            ``query_instruction_format.format(instruction, query)``; the same for passages.
        trust_remote_code, cache_dir: as in ``from_pretrained``.
        devices: ``"cuda:0"``, ``0``, ``"cpu"``, ``["cpu"]``; ``None`` picks one device.
        batch_size, query_max_length, max_length, normalize: defaults of ``compute_score``.

    >>> reranker = FlagReranker("BAAI/bge-reranker-v2-m3", use_fp16=True, devices=["cuda:0"])  # doctest: +SKIP
    >>> reranker.compute_score(["query", "passage"])                                         # doctest: +SKIP
    [-5.65234375]
    """

    def __init__(
        self,
        model_name_or_path: str,
        use_fp16: bool = False,
        query_instruction_for_rerank: Optional[str] = None,
        query_instruction_format: str = "{}{}",
        passage_instruction_for_rerank: Optional[str] = None,
        passage_instruction_format: str = "{}{}",
        trust_remote_code: bool = False,
        cache_dir: Optional[str] = None,
        devices: Devices = None,
        batch_size: int = 128,
        query_max_length: Optional[int] = None,
        max_length: int = 512,
        normalize: bool = False,
        **kwargs: Any,
    ) -> None:
        self.use_fp16 = use_fp16
        self._set_instructions(query_instruction_for_rerank, query_instruction_format,
                               passage_instruction_for_rerank, passage_instruction_format)  # fmt: skip
        self._setup(model_name_or_path, cache_dir, devices, batch_size, max_length,
                    query_max_length, normalize, kwargs, use_fp16=bool(use_fp16),
                    trust_remote_code=trust_remote_code)  # fmt: skip
        self.model_name_or_path = model_name_or_path
        if self.reranker.prompt_format is not None:
            raise ValueError(
                f"model_name_or_path={model_name_or_path!r} is a decoder LLM reranker "
                "(*ForCausalLM); use FlagLLMReranker for it"
            )

    def _detailed(self, pairs: list) -> list:
        query_instruction = self.query_instruction_for_rerank
        passage_instruction = self.passage_instruction_for_rerank
        if query_instruction is None and passage_instruction is None:
            return pairs
        detailed = []
        for i, pair in enumerate(pairs):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                raise TypeError(
                    f"sentence_pairs[{i}] must be a [query, passage] pair, got {pair!r:.80}"
                )
            query, passage = pair
            if query_instruction is not None:
                query = _instruct(self.query_instruction_format, query_instruction, query)
            if passage_instruction is not None:
                passage = _instruct(self.passage_instruction_format, passage_instruction, passage)
            detailed.append([query, passage])
        return detailed

    def compute_score(
        self,
        sentence_pairs: Union[Sequence[Sequence[str]], Sequence[str]],
        batch_size: Optional[int] = None,
        query_max_length: Optional[int] = None,
        max_length: Optional[int] = None,
        normalize: Optional[bool] = None,
        **kwargs: Any,
    ) -> Scores:
        """Scores of ``[query, passage]`` pairs, in input order (a list, also for one pair).

        Raw logits unless ``normalize`` (default: the constructor's) applies a sigmoid.

        >>> reranker.compute_score([["q", "p1"], ["q", "p2"]], normalize=True)  # doctest: +SKIP
        [0.00027803096387751553, 0.9948403768236574]
        """
        return self._score(
            sentence_pairs, batch_size, query_max_length, max_length, normalize, kwargs
        )
