"""Tiny random PyLate ColBERT checkpoints, and their scores from plain transformers and from PyLate.

:func:`save_colbert` writes the folder PyLate's ``ColBERT.save`` writes (``modules.json``, the
encoder at the root with ``[Q] ``/``[D] `` added to its tokenizer, ``1_Dense/``,
``sentence_bert_config.json``, ``config_sentence_transformers.json``) without needing PyLate.
:func:`colbert_reference` scores pairs straight from transformers, one text at a time, the way
PyLate's ``models.ColBERT`` encodes them; :func:`pylate_scores` and :func:`pylate_rerank` ask PyLate
itself (``pip install pylate``; it pins its own transformers, so it lives in a venv of its own).

>>> from crossrank.testing.colbert import colbert_reference, save_colbert
>>> path = save_colbert(tmp_path / "colbert")                           # doctest: +SKIP
>>> colbert_reference(path, [("what is panda?", "a bear")])              # doctest: +SKIP
[5.91...]
"""

from __future__ import annotations

import json
import os
import string
from typing import Any, Dict, List, Sequence, Tuple

import torch

from .models import TINY_SIZES, build_tokenizer

COLBERT_KINDS = ("bert", "modernbert")
# Short lengths, so that the test pairs reach query truncation, expansion and passage truncation.
TINY_COLBERT = dict(query_length=12, document_length=40, embedding_size=16)


def _encoder(kind: str, vocab_size: int, tokenizer):
    from transformers import BertConfig, BertModel, ModernBertConfig, ModernBertModel

    common = dict(vocab_size=vocab_size, **TINY_SIZES, pad_token_id=tokenizer.pad_token_id)
    if kind == "bert":
        return BertModel(BertConfig(max_position_embeddings=128, initializer_range=0.3, **common))
    if kind == "modernbert":
        config = ModernBertConfig(
            max_position_embeddings=128,
            initializer_range=0.3,
            cls_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
            local_attention=16,
            **common,
        )
        return ModernBertModel(config)
    raise ValueError(f"kind must be one of {COLBERT_KINDS}, got {kind!r}")


def save_colbert(
    path, kind: str = "bert", seed: int = 0, layout: str = "pylate", **options: Any
) -> str:
    """Write a tiny random ColBERT checkpoint at ``path`` as PyLate saves one; returns the path.

    ``options`` override the ColBERT settings (``query_length``, ``document_length``,
    ``embedding_size``, ``do_query_expansion``, ``attend_to_expansion_tokens``, ``query_prefix``,
    ``document_prefix``, ``skiplist_words``) and ``bias``/``do_lower_case``.
    ``layout="stanford"``: as the ``colbert-ai`` library saves one instead (``HF_ColBERT``, the
    ``linear`` projection beside ``bert.*`` in one weights file, ``artifact.metadata``).
    """
    if layout == "stanford":
        return _save_stanford(path, seed, **options)
    if layout != "pylate":
        raise ValueError(f"layout must be 'pylate' or 'stanford', got {layout!r}")
    torch.manual_seed(seed)
    tokenizer = build_tokenizer("bert")
    prefixes = [options.get("query_prefix", "[Q] "), options.get("document_prefix", "[D] ")]
    tokenizer.add_tokens([p for p in prefixes if p])
    tokenizer.pad_token = tokenizer.mask_token  # PyLate pads queries with [MASK] and saves that
    encoder = _encoder(kind, len(tokenizer), tokenizer).eval()
    return write_pylate_folder(path, encoder, tokenizer, **dict(TINY_COLBERT, **options))


def write_pylate_folder(
    path,
    encoder,
    tokenizer,
    embedding_size: int,
    bias: bool = False,
    do_lower_case: bool = False,
    **settings: Any,
) -> str:
    """Save ``encoder`` and ``tokenizer`` (its prefix tokens added) with a random ``Dense``
    projection to ``embedding_size`` as PyLate's ``ColBERT.save`` lays a checkpoint out.

    ``settings``: what ``config_sentence_transformers.json`` holds (PyLate's defaults otherwise).
    """
    from safetensors.torch import save_file

    config: Dict[str, Any] = dict(
        query_prefix="[Q] ",
        document_prefix="[D] ",
        query_length=32,
        document_length=180,
        do_query_expansion=True,
        attend_to_expansion_tokens=False,
        skiplist_words=list(string.punctuation),
    )
    unknown = set(settings) - set(config)
    if unknown:
        raise ValueError(f"unknown ColBERT options {sorted(unknown)}")
    config.update(settings)
    path = os.fspath(path)
    encoder.save_pretrained(path)
    tokenizer.save_pretrained(path)
    hidden = encoder.config.hidden_size
    linear = torch.nn.Linear(hidden, embedding_size, bias=bias)
    os.makedirs(os.path.join(path, "1_Dense"), exist_ok=True)
    save_file(
        {f"linear.{k}": v.contiguous() for k, v in linear.state_dict().items()},
        os.path.join(path, "1_Dense", "model.safetensors"),
    )
    files = {
        "1_Dense/config.json": dict(
            in_features=hidden,
            out_features=embedding_size,
            bias=bias,
            activation_function="torch.nn.modules.linear.Identity",
            use_residual=False,
        ),
        "modules.json": [
            dict(idx=0, name="0", path="", type="sentence_transformers.models.Transformer"),
            dict(idx=1, name="1", path="1_Dense", type="pylate.models.Dense.Dense"),
        ],
        "sentence_bert_config.json": dict(
            max_seq_length=encoder.config.max_position_embeddings, do_lower_case=do_lower_case
        ),
        "config_sentence_transformers.json": dict(
            model_type="ColBERT",
            prompts={"query": "", "document": ""},
            default_prompt_name=None,
            similarity_fn_name="MaxSim",
            **config,
        ),
    }
    for name, content in files.items():
        with open(os.path.join(path, name), "w", encoding="utf-8") as stream:
            json.dump(content, stream, indent=2)
    return path


def _save_stanford(path, seed: int = 0, **options: Any) -> str:
    """A tiny random checkpoint as the Stanford ``colbert-ai`` library saves one."""
    from safetensors.torch import save_file

    metadata = dict(
        query_token_id="[unused0]",
        doc_token_id="[unused1]",
        query_maxlen=TINY_COLBERT["query_length"],
        doc_maxlen=TINY_COLBERT["document_length"],
        attend_to_mask_tokens=False,
        dim=TINY_COLBERT["embedding_size"],
    )
    metadata.update(options)
    torch.manual_seed(seed)
    tokenizer = build_tokenizer("bert")
    tokenizer.add_tokens([metadata["query_token_id"], metadata["doc_token_id"]])
    encoder = _encoder("bert", len(tokenizer), tokenizer).eval()
    linear = torch.nn.Linear(TINY_SIZES["hidden_size"], metadata["dim"], bias=False)
    path = os.fspath(path)
    encoder.config.architectures = ["HF_ColBERT"]
    encoder.config.save_pretrained(path)
    tokenizer.save_pretrained(path)
    state = {f"bert.{k}": v.contiguous() for k, v in encoder.state_dict().items()}
    state["linear.weight"] = linear.weight.detach().contiguous()
    save_file(state, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(path, "artifact.metadata"), "w", encoding="utf-8") as stream:
        json.dump(metadata, stream, indent=2)
    return path


def _settings(path) -> Tuple[Dict[str, Any], bool, str]:
    """(PyLate's settings, do_lower_case, the projection's weights file) of either layout."""
    metadata = os.path.join(path, "artifact.metadata")
    if os.path.isfile(metadata):
        with open(metadata, encoding="utf-8") as stream:
            meta = json.load(stream)
        config = dict(
            query_prefix=meta.get("query_token_id") or "[unused0]",
            document_prefix=meta.get("doc_token_id") or "[unused1]",
            query_length=meta.get("query_maxlen") or 32,
            document_length=meta.get("doc_maxlen") or 180,
            attend_to_expansion_tokens=meta.get("attend_to_mask_tokens", False),
            do_query_expansion=True,
            skiplist_words=list(string.punctuation),
        )
        return config, False, os.path.join(path, "model.safetensors")
    with open(os.path.join(path, "config_sentence_transformers.json"), encoding="utf-8") as s:
        config = json.load(s)
    with open(os.path.join(path, "sentence_bert_config.json"), encoding="utf-8") as s:
        lower = json.load(s).get("do_lower_case", False)
    return config, lower, os.path.join(path, "1_Dense", "model.safetensors")


def colbert_reference(path, pairs: Sequence[Tuple[str, str]]) -> List[float]:
    """MaxSim of each (query, passage) pair from transformers alone, one text at a time.

    Follows PyLate's ``ColBERT.tokenize``/``encode``: strip, cut to ``length - 1`` tokens with the
    tokenizer's own truncation (queries padded to it with ``[MASK]`` under query expansion), the
    prefix inserted after the first token, projected, normalized; skiplist tokens of the passage
    dropped; score = sum over query tokens of the max dot product.
    """
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    config, lower, dense = _settings(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.pad_token = tokenizer.mask_token
    model = AutoModel.from_pretrained(path).eval()
    state = load_file(dense)
    skip = set(tokenizer.convert_tokens_to_ids(config["skiplist_words"]))
    expand = config["do_query_expansion"]

    def embed(text: str, is_query: bool) -> torch.Tensor:
        text = text.strip().lower() if lower else text.strip()
        prefix = config["query_prefix"] if is_query else config["document_prefix"]
        length = config["query_length"] if is_query else config["document_length"]
        padding = "max_length" if is_query and expand else False
        encoded = tokenizer(
            text,
            truncation=True,
            max_length=length - 1 if prefix else length,
            padding=padding,
            return_tensors="pt",
        )
        ids, mask = encoded["input_ids"][0].tolist(), encoded["attention_mask"][0].tolist()
        if prefix:
            ids.insert(1, tokenizer.convert_tokens_to_ids(prefix))
            mask.insert(1, 1)
        if is_query and expand and config["attend_to_expansion_tokens"]:
            mask = [1] * len(mask)
        with torch.no_grad():
            hidden = model(input_ids=torch.tensor([ids]), attention_mask=torch.tensor([mask]))[0]
            out = torch.nn.functional.linear(
                hidden[0], state["linear.weight"], state.get("linear.bias")
            )
        out = torch.nn.functional.normalize(out, p=2, dim=-1)
        if is_query:
            return out if expand else out[torch.tensor(mask, dtype=torch.bool)]
        return out[torch.tensor([i not in skip for i in ids])]

    scores = []
    for query, passage in pairs:
        q, d = embed(query, True), embed(passage, False)
        scores.append(float(sum(max(float(qi @ dj) for dj in d) for qi in q)))
    return scores


def pylate_scores(path, pairs: Sequence[Tuple[str, str]]) -> List[float]:
    """Each pair's score from PyLate: ``ColBERT.encode`` then ``scores.colbert_scores`` alone."""
    from pylate import models, scores

    model = models.ColBERT(path, device="cpu")
    queries = model.encode([q for q, _ in pairs], is_query=True, convert_to_tensor=True)
    passages = model.encode([p for _, p in pairs], is_query=False, convert_to_tensor=True)
    return [float(scores.colbert_scores(q[None], d[None])[0, 0]) for q, d in zip(queries, passages)]


def pylate_rerank(path, query: str, documents: Sequence[str]) -> List[Dict[str, Any]]:
    """PyLate's ``rank.rerank`` of ``documents`` for ``query`` (ids are the documents' indices)."""
    from pylate import models, rank

    model = models.ColBERT(path, device="cpu")
    queries = model.encode([query], is_query=True)
    passages = model.encode([list(documents)], is_query=False)
    ids = [list(range(len(documents)))]
    return rank.rerank(
        documents_ids=ids, queries_embeddings=queries, documents_embeddings=passages
    )[0]


__all__ = [
    "COLBERT_KINDS",
    "TINY_COLBERT",
    "colbert_reference",
    "pylate_rerank",
    "pylate_scores",
    "save_colbert",
    "write_pylate_folder",
]
