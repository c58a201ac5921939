"""Late-interaction (ColBERT) reranking on tiny random PyLate checkpoints built at test time.

References: PyLate itself (``models.ColBERT.encode`` + ``scores.colbert_scores``, ``rank.rerank``)
where it is importable — it pins its own transformers, so CI runs this module in a venv that has it
— and always the same MaxSim computed straight from transformers
(:func:`crossrank.testing.colbert.colbert_reference`).
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from crossrank import Reranker
from crossrank.batching import collate
from crossrank.errors import ModelLoadError
from crossrank.families.colbert_checkpoint import ColbertModel
from crossrank.families.late_interaction import DOCUMENT, EXPANSION, QUERY, SKIPPED
from crossrank.testing import LONG_PASSAGE, PANDA_DOCS, PANDA_QUERY, SCORING_PAIRS, save_model
from crossrank.testing.colbert import (
    COLBERT_KINDS,
    TINY_COLBERT,
    colbert_reference,
    pylate_rerank,
    pylate_scores,
    save_colbert,
)

# Punctuation (skiplist), upper case, a passage and a query cut to fit, an empty passage, a query
# repeated over several passages.
PAIRS = list(SCORING_PAIRS) + [(PANDA_QUERY, doc) for doc in PANDA_DOCS]
TOLERANCE = 1e-5
FAMILY = "late-interaction reranker"
# The settings PyLate reads from config_sentence_transformers.json, each away from its default.
VARIANTS = {
    "default": {},
    "attend-to-expansion": {"attend_to_expansion_tokens": True},
    "no-expansion": {"do_query_expansion": False},
    "bias-lowercase": {"bias": True, "do_lower_case": True},
    "no-prefixes": {"query_prefix": "", "document_prefix": ""},
}
# (encoder kind, variant) checkpoints: every PyLate variant on both encoders, and the Stanford
# colbert-ai layout (answerai-colbert-small-v1, colbertv2.0) that PyLate also reads.
CHECKPOINTS = [(kind, name) for kind in COLBERT_KINDS for name in VARIANTS] + [("bert", "stanford")]
PYLATE_MISSING = "pylate is not installed (it pins transformers<=5.3; CI runs it in its own venv)"


def _pylate():
    try:
        import pylate.models  # noqa: F401
    except ImportError:
        pytest.skip(PYLATE_MISSING)


@pytest.fixture(scope="module")
def colbert_dirs(tmp_path_factory):
    """Read-only tiny ColBERT checkpoints: (kind, variant) → path."""
    root = tmp_path_factory.mktemp("colbert")
    dirs = {
        (kind, name): save_colbert(root / f"{kind}-{name}", kind, **options)
        for kind in COLBERT_KINDS
        for name, options in VARIANTS.items()
    }
    dirs[("bert", "stanford")] = save_colbert(root / "stanford", layout="stanford")
    return dirs


def _max_difference(left, right):
    assert len(left) == len(right)
    return max(abs(a - b) for a, b in zip(left, right))


# ---------------------------------------------------------------------- detection


def test_pylate_folders_are_detected_from_their_files(colbert_dirs):
    for key, path in colbert_dirs.items():
        assert Reranker(path, device="cpu").family == FAMILY, key


def test_other_sentence_transformers_folders_stay_what_they_were(tmp_path, colbert_dirs):
    """A bi-encoder folder (Pooling, no ColBERT config) is not a late-interaction model: it is
    refused as a cross-encoder without a trained head, as before."""
    path = shutil.copytree(colbert_dirs[("bert", "default")], tmp_path / "bi-encoder")
    modules = json.loads((path / "modules.json").read_text())
    modules[1]["type"] = "sentence_transformers.models.Pooling"
    (path / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelLoadError, match="no trained reranking head"):
        Reranker(os.fspath(path), device="cpu")


def test_cross_encoders_are_not_late_interaction(tmp_path):
    path = save_model(tmp_path / "bert", "bert")
    assert Reranker(path, device="cpu").family == "cross-encoder"


def test_decoder_options_are_refused_by_name(colbert_dirs):
    path = colbert_dirs[("bert", "default")]
    with pytest.raises(ValueError, match="prompt_format=.*late-interaction"):
        Reranker(path, device="cpu", prompt_format="qwen3")


def test_a_prefix_missing_from_the_tokenizer_is_refused(tmp_path, colbert_dirs):
    """PyLate would add it and grow the embeddings with a random row: not reproducible."""
    path = shutil.copytree(colbert_dirs[("bert", "default")], tmp_path / "no-prefix-token")
    config = json.loads((path / "config_sentence_transformers.json").read_text())
    config["query_prefix"] = "[query] "
    (path / "config_sentence_transformers.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="prefix '\\[query\\] ' is not a token"):
        Reranker(os.fspath(path), device="cpu")


def test_a_missing_projection_is_refused(tmp_path, colbert_dirs):
    path = shutil.copytree(colbert_dirs[("bert", "default")], tmp_path / "no-dense-weights")
    os.remove(path / "1_Dense" / "model.safetensors")
    with pytest.raises(ModelLoadError, match="no weights for its Dense projection"):
        Reranker(os.fspath(path), device="cpu")


# ---------------------------------------------------------------------- inputs


def test_features_follow_pylate_layout(colbert_dirs):
    """[CLS] [Q] query [SEP] [MASK]… to query_length, then [CLS] [D] passage [SEP]; punctuation of
    the passage encoded but not scored."""
    reranker = Reranker(colbert_dirs[("bert", "default")], device="cpu")
    tokenizer = reranker.tokenizer
    feature = reranker.encoder.encode(["what is panda?"], ["a bear, of china."])[0]
    ids = list(feature["input_ids"])
    length = TINY_COLBERT["query_length"]
    query = tokenizer.convert_tokens_to_ids(["[CLS]", "[Q] ", "what", "is", "panda", "?", "[SEP]"])
    assert ids[:length] == query + [tokenizer.mask_token_id] * (length - len(query))
    roles = list(feature["token_type_ids"])
    assert roles[:length] == [QUERY] * len(query) + [EXPANSION] * (length - len(query))
    passage = ["[CLS]", "[D] ", "a", "bear", ",", "of", "china", ".", "[SEP]"]
    assert ids[length:] == tokenizer.convert_tokens_to_ids(passage)
    assert roles[length:] == [DOCUMENT] * 4 + [SKIPPED] + [DOCUMENT] * 2 + [SKIPPED, DOCUMENT]


def test_a_passage_token_limit_keeps_that_many_passage_tokens(colbert_dirs):
    reranker = Reranker(colbert_dirs[("bert", "default")], device="cpu")
    whole, limited = reranker.encoder.encode(["q", "q"], ["a bear of china"] * 2, [None, 2])
    length = TINY_COLBERT["query_length"]
    passage = list(whole["input_ids"])[length:]  # [CLS] [D] a bear of china [SEP]
    assert list(limited["input_ids"])[length:] == passage[:4] + passage[-1:]


# ---------------------------------------------------------------------- scores


@pytest.mark.parametrize("key", CHECKPOINTS, ids="-".join)
def test_scores_equal_maxsim_from_transformers(colbert_dirs, key):
    path = colbert_dirs[key]
    scores = Reranker(path, device="cpu", use_fp16=False, batch_size=4).compute_score(PAIRS)
    assert _max_difference(scores, colbert_reference(path, PAIRS)) < TOLERANCE


@pytest.mark.parametrize("key", CHECKPOINTS, ids="-".join)
def test_scores_equal_pylate(colbert_dirs, key):
    _pylate()
    path = colbert_dirs[key]
    scores = Reranker(path, device="cpu", use_fp16=False).compute_score(PAIRS)
    assert _max_difference(scores, pylate_scores(path, PAIRS)) < TOLERANCE


def test_rank_equals_pylate_rerank(colbert_dirs):
    """``rank`` against ``rank.rerank``, each passage its own candidate list: PyLate pads a list's
    passages with zero vectors that take part in the max, so in one list a short passage's score
    depends on its neighbours; on its own it is the plain MaxSim."""
    _pylate()
    path = colbert_dirs[("bert", "default")]
    hits = Reranker(path, device="cpu", use_fp16=False).rank(
        PANDA_QUERY, PANDA_DOCS, normalize=False
    )
    expected = {
        index: pylate_rerank(path, PANDA_QUERY, [doc])[0]["score"]
        for index, doc in enumerate(PANDA_DOCS)
    }
    assert _max_difference([h.score for h in hits], [expected[h.index] for h in hits]) < TOLERANCE
    assert [h.index for h in hits] == sorted(expected, key=lambda i: -expected[i])


def test_a_checkpoint_pylate_saved_itself(tmp_path):
    """PyLate's own ``ColBERT(base).save(path)``: its added prefix tokens, its Dense, its config."""
    _pylate()
    from pylate import models
    from transformers import BertConfig, BertModel

    from crossrank.testing.models import TINY_SIZES, build_tokenizer

    torch.manual_seed(1)
    tokenizer = build_tokenizer("bert")
    config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=128, **TINY_SIZES)
    BertModel(config).save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    model = models.ColBERT(
        os.fspath(tmp_path / "base"),
        device="cpu",
        embedding_size=16,
        query_length=10,
        document_length=30,
    )
    model.save(os.fspath(tmp_path / "colbert"))
    path = os.fspath(tmp_path / "colbert")
    scores = Reranker(path, device="cpu", use_fp16=False).compute_score(PAIRS)
    assert _max_difference(scores, pylate_scores(path, PAIRS)) < TOLERANCE


def test_rank_and_rank_many_order_by_maxsim(colbert_dirs):
    path = colbert_dirs[("bert", "default")]
    reranker = Reranker(path, device="cpu", use_fp16=False)
    expected = colbert_reference(path, [(PANDA_QUERY, doc) for doc in PANDA_DOCS])
    order = sorted(range(len(PANDA_DOCS)), key=lambda i: -expected[i])
    hits = reranker.rank(PANDA_QUERY, PANDA_DOCS, normalize=False)
    assert [h.index for h in hits] == order
    many = reranker.rank_many([PANDA_QUERY, "python"], [PANDA_DOCS, PANDA_DOCS[:2]], top_k=3)
    assert [h.index for h in many[0]] == order[:3]
    assert len(many[1]) == 2


def test_a_shorter_max_length_cuts_passages_like_document_length(tmp_path, colbert_dirs):
    """``max_length`` caps a passage's tokens where it is below the checkpoint's document_length."""
    short = save_colbert(tmp_path / "short", document_length=16)
    long_dir = colbert_dirs[("bert", "default")]
    scores = Reranker(long_dir, device="cpu", use_fp16=False, max_length=16).compute_score(PAIRS)
    assert _max_difference(scores, colbert_reference(short, PAIRS)) < TOLERANCE


def test_long_passages_in_windows_score_their_best_window(colbert_dirs):
    path = colbert_dirs[("bert", "default")]
    pairs = [("which bear eats bamboo", LONG_PASSAGE), ("which bear eats bamboo", "a bear")]
    truncated = Reranker(path, device="cpu", use_fp16=False).compute_score(pairs)
    windows = Reranker(path, device="cpu", use_fp16=False, long_documents="maxp", stride=4)
    scores = windows.compute_score(pairs)
    assert scores[1] == pytest.approx(truncated[1], abs=TOLERANCE)  # fits: one window
    query, passage = pairs[0]
    features, owners = windows.encoder.encode_windows([query], [passage], stride=4)
    assert len(features) > 1 and set(owners) == {0}
    first = windows.encoder.encode([query], [passage])[0]
    assert list(features[0]["input_ids"]) == list(first["input_ids"])  # the truncated passage
    assert scores[0] >= truncated[0] - TOLERANCE


# ---------------------------------------------------------------------- where the query is encoded


def test_each_query_is_encoded_once_per_batch(colbert_dirs, monkeypatch):
    """Six passages of one query in a batch: one query row and six passage rows are encoded."""
    reranker = Reranker(colbert_dirs[("bert", "default")], device="cpu", use_fp16=False)
    family = reranker.model_family
    features = reranker.encoder.encode([PANDA_QUERY] * 6 + ["python"], PANDA_DOCS + ["a"])
    batch = collate(features, family.pad_token_id)
    module = reranker._backends[0].model
    rows = []
    original = type(module).forward

    def counting(self, input_ids, attention_mask):
        rows.append(input_ids.shape[0])
        return original(self, input_ids, attention_mask)

    monkeypatch.setattr(type(module), "forward", counting)
    with torch.inference_mode():
        scores = family.forward(module, batch)[:, 0].tolist()
    assert rows == [2, 7]
    expected = colbert_reference(
        colbert_dirs[("bert", "default")],
        [(PANDA_QUERY, d) for d in PANDA_DOCS] + [("python", "a")],
    )
    assert _max_difference(scores, expected) < TOLERANCE


# ---------------------------------------------------------------------- backends and dtypes


def test_bfloat16_scores_stay_close_to_float32(colbert_dirs):
    path = colbert_dirs[("bert", "default")]
    float32 = Reranker(path, device="cpu", use_fp16=False).compute_score(PAIRS)
    reranker = Reranker(path, device="cpu", dtype="bfloat16")
    assert reranker._backends[0].dtype == torch.bfloat16
    bfloat16 = reranker.compute_score(PAIRS)
    # bf16 keeps ~3 significant digits per similarity; a score sums query_length of them
    assert _max_difference(bfloat16, float32) < 0.05 * TINY_COLBERT["query_length"]


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_other_backends_refuse_before_loading_weights(colbert_dirs, backend, monkeypatch):
    pytest.importorskip("onnxruntime" if backend == "onnx" else "openvino")

    def no_weights(*args, **kwargs):
        raise AssertionError("weights loaded before the refusal")

    monkeypatch.setattr(ColbertModel, "from_pretrained", no_weights)
    with pytest.raises(
        ValueError, match=f"backend='{backend}' does not run late-interaction.*backend='torch'"
    ):
        Reranker(colbert_dirs[("bert", "default")], device="cpu", backend=backend)
