"""Seq2seq (monoT5-style) rerankers on tiny random T5 / mT5 checkpoints built at test time.

References: `rerankers`' ``T5Ranker`` (its score is softmax([false, true])[true] at the first
decoder step, the sigmoid of crossrank's raw score) where that package is installed, and always
the same logits straight from transformers, one pair at a time and without padding.
"""

from __future__ import annotations

import math
import os
import shutil

import pytest
import torch

from crossrank import Reranker
from crossrank.families.seq2seq import is_seq2seq_lm, label_token_ids
from crossrank.testing import LONG_PASSAGE, PANDA_DOCS, PANDA_QUERY, SCORING_PAIRS
from crossrank.testing.seq2seq import SEQ2SEQ_KINDS, monot5_reference, save_seq2seq
from crossrank.windows import split_windows, window_overlap

# Pairs that fit 512 tokens whole: upper case, punctuation, an empty passage, repeated queries.
FITTING = [pair for pair in SCORING_PAIRS if pair[1] != LONG_PASSAGE] + [
    (PANDA_QUERY, doc) for doc in PANDA_DOCS
]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def t5_dirs(tmp_path_factory):
    """Read-only tiny seq2seq checkpoints: kind → path."""
    root = tmp_path_factory.mktemp("seq2seq")
    return {kind: save_seq2seq(root / kind, kind) for kind in SEQ2SEQ_KINDS}


def _model_logits(model_dir, id_lists):
    """logit(▁true) − logit(▁false) at the first decoder step for each token list, one by one."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    true, false = tokenizer.convert_tokens_to_ids(["\u2581true", "\u2581false"])
    start = torch.tensor([[model.config.decoder_start_token_id]])
    scores = []
    for ids in id_lists:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids]), decoder_input_ids=start).logits[0, 0]
        scores.append(float(logits[true] - logits[false]))
    return scores


def _prompt_pieces(model_dir, query, passage):
    """The whole prompt's tokens split by token identity: up to ``▁Document:``, the passage,
    ``▁Relevant: </s>`` (independent of crossrank's character offsets)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids = tokenizer(f"Query: {query} Document: {passage} Relevant:")["input_ids"]
    document = tokenizer.convert_tokens_to_ids("\u2581Document:")
    head = ids[: ids.index(document) + 1]
    return head, ids[len(head) : -2], ids[-2:]


# ---------------------------------------------------------------------- detection and options


def test_t5_checkpoints_are_detected_from_their_config(t5_dirs):
    for kind, path in t5_dirs.items():
        assert Reranker(path, device="cpu").family == "seq2seq reranker", kind


def test_only_conditional_generation_heads_are_seq2seq():
    from transformers import BartConfig, T5Config

    assert is_seq2seq_lm(T5Config(architectures=["T5ForConditionalGeneration"]))
    assert is_seq2seq_lm(T5Config())  # no architectures: the model type decides
    assert not is_seq2seq_lm(T5Config(architectures=["T5ForSequenceClassification"]))
    assert not is_seq2seq_lm(T5Config(architectures=["T5EncoderModel"], is_encoder_decoder=False))
    assert is_seq2seq_lm(BartConfig(architectures=["BartForConditionalGeneration"]))
    assert not is_seq2seq_lm(BartConfig())  # a BART without architectures: not a T5 type


def test_other_encoder_decoders_are_refused_naming_the_t5_family(t5_dirs, tmp_path):
    from transformers import AutoConfig

    path = shutil.copytree(t5_dirs["t5"], tmp_path / "bart-like")
    config = AutoConfig.from_pretrained(path).to_dict()
    config.update(model_type="bart", architectures=["BartForConditionalGeneration"])
    from transformers import BartConfig

    BartConfig(**{k: v for k, v in config.items() if k != "model_type"}).save_pretrained(path)
    with pytest.raises(ValueError, match=r"type 'bart'.*T5 family \(t5, mt5, umt5\)"):
        Reranker(str(path), device="cpu")


@pytest.mark.parametrize("argument", ["prompt_format", "instruction"])
def test_decoder_options_are_refused_by_name(t5_dirs, argument):
    with pytest.raises(ValueError, match=rf"{argument}= applies to decoder LLM rerankers"):
        Reranker(t5_dirs["t5"], device="cpu", **{argument: "qwen3"})


def test_label_tokens_prefer_sentencepiece_pieces_and_refuse_a_vocabulary_without_them():
    class Vocabulary:
        def __init__(self, vocab):
            self.vocab = vocab

        def get_vocab(self):
            return dict(self.vocab)

    both = {"true": 1, "false": 2, "\u2581true": 3, "\u2581false": 4}
    assert label_token_ids(Vocabulary(both), "m") == [4, 3]  # [false, true]
    assert label_token_ids(Vocabulary({"true": 1, "false": 2}), "m") == [2, 1]
    with pytest.raises(ValueError, match="no 'true'/'false' tokens"):
        label_token_ids(Vocabulary({"\u2581yes": 1, "\u2581no": 2}), "m")


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_other_backends_refuse_before_loading_weights(t5_dirs, tmp_path, backend):
    pytest.importorskip("onnxruntime" if backend == "onnx" else "openvino")
    path = shutil.copytree(t5_dirs["t5"], tmp_path / "no-weights")
    os.remove(path / "model.safetensors")  # loading weights would fail with another error
    with pytest.raises(ValueError, match=r"does not run seq2seq rerankers.*backend='torch'"):
        Reranker(str(path), backend=backend)


# ---------------------------------------------------------------------- scores


@pytest.mark.parametrize("kind", SEQ2SEQ_KINDS)
def test_scores_equal_the_transformers_logits(t5_dirs, kind):
    path = t5_dirs[kind]
    ours = Reranker(path, device="cpu", batch_size=4).compute_score(FITTING)
    reference = monot5_reference(path, FITTING, max_length=512)
    assert max(abs(a - b) for a, b in zip(ours, reference)) <= TOLERANCE
    assert len(set(ours)) > len(FITTING) // 2  # the tiny model tells pairs apart


@pytest.mark.parametrize("kind", SEQ2SEQ_KINDS)
def test_normalized_scores_and_ranking_equal_rerankers_t5ranker(t5_dirs, kind):
    t5ranker = pytest.importorskip("rerankers.models.t5ranker")
    path = t5_dirs[kind]
    theirs = t5ranker.T5Ranker(path, device="cpu", dtype=torch.float32, verbose=0, batch_size=3)
    ours = Reranker(path, device="cpu", batch_size=5)
    for query in dict.fromkeys(q for q, _ in FITTING):
        docs = [d for q, d in FITTING if q == query]
        results = theirs.rank(query, docs, doc_ids=list(range(len(docs))))
        expected = {result.document.doc_id: result.score for result in results.results}
        hits = ours.rank(query, docs)
        assert [hit.index for hit in hits] == [r.document.doc_id for r in results.results]
        assert max(abs(hit.score - expected[hit.index]) for hit in hits) <= TOLERANCE
        # crossrank's raw score is the log-odds of T5Ranker's probability (which may be tiny)
        raw = ours.compute_score([[query, d] for d in docs])
        log_odds = [math.log(expected[i]) - math.log1p(-expected[i]) for i in range(len(docs))]
        assert raw == pytest.approx(log_odds, abs=TOLERANCE)


def test_padded_batches_equal_one_by_one(t5_dirs):
    reranker = Reranker(t5_dirs["mt5"], device="cpu")
    batched = reranker.compute_score(FITTING, batch_size=32)
    alone = [reranker.compute_score(list(pair)) for pair in FITTING]
    assert max(abs(a - b) for a, b in zip(batched, alone)) <= TOLERANCE


def test_rank_many_equals_rank_and_empty_input_gives_empty_results(t5_dirs):
    reranker = Reranker(t5_dirs["t5"], device="cpu")
    queries = ["what does a panda eat?", PANDA_QUERY]
    many = reranker.rank_many(queries, [PANDA_DOCS[:3], PANDA_DOCS])
    alone = [reranker.rank(queries[0], PANDA_DOCS[:3]), reranker.rank(PANDA_QUERY, PANDA_DOCS)]
    for hits, expected in zip(many, alone):  # other batches: equal up to float noise
        assert [hit.index for hit in hits] == [hit.index for hit in expected]
        assert [hit.score for hit in hits] == pytest.approx([h.score for h in expected], abs=1e-6)
    assert reranker.compute_score([]) == []
    assert reranker.rank(PANDA_QUERY, []) == []
    assert reranker.rank_many([], []) == []


# ---------------------------------------------------------------------- long inputs


def test_long_passage_is_cut_and_the_prompt_stays_whole(t5_dirs):
    path, max_length = t5_dirs["t5"], 48
    query = "what is the capital of france"
    head, passage, tail = _prompt_pieces(path, query, LONG_PASSAGE)
    ids = head + passage[: max_length - len(head) - len(tail)] + tail
    assert len(ids) == max_length and len(passage) > max_length
    ours = Reranker(path, device="cpu", max_length=max_length).compute_score([query, LONG_PASSAGE])
    assert ours == pytest.approx(_model_logits(path, [ids])[0], abs=TOLERANCE)


def test_long_query_is_capped_and_the_passage_keeps_room(t5_dirs):
    path, max_length = t5_dirs["t5"], 64
    long_query = " ".join(["what is the weather in the sky"] * 12)
    reranker = Reranker(path, device="cpu", max_length=max_length)
    encoder = reranker._family.encoder(max_length)
    (feature,) = encoder.encode([long_query], ["blue sky and rain"])
    head, passage, tail = _prompt_pieces(path, long_query, "blue sky and rain")
    assert len(feature["input_ids"]) <= max_length
    assert feature["input_ids"][-len(passage) - len(tail) :] == passage + tail
    assert reranker.compute_score([long_query, "blue sky and rain"]) == pytest.approx(
        _model_logits(path, [feature["input_ids"]])[0], abs=TOLERANCE
    )


def test_maxp_scores_a_long_passage_by_its_best_window(t5_dirs):
    path, max_length, stride = t5_dirs["mt5"], 40, 6
    query = "which bear eats bamboo"
    head, passage, tail = _prompt_pieces(path, query, LONG_PASSAGE)
    room = max_length - len(head) - len(tail)
    windows = split_windows(passage, room, window_overlap(stride, room))
    assert len(windows) > 3
    reference = max(_model_logits(path, [head + window + tail for window in windows]))
    reranker = Reranker(
        path, device="cpu", max_length=max_length, long_documents="maxp", stride=stride
    )
    assert reranker.compute_score([query, LONG_PASSAGE]) == pytest.approx(reference, abs=TOLERANCE)


# ---------------------------------------------------------------------- precision


def test_bfloat16_on_cpu_scores_near_float32(t5_dirs):
    path = t5_dirs["t5"]
    reranker = Reranker(path, device="cpu", dtype="bfloat16")
    assert reranker.dtype == torch.bfloat16
    scores = reranker.compute_score(FITTING)
    reference = monot5_reference(path, FITTING, max_length=512)
    assert all(math.isfinite(s) for s in scores)
    assert max(abs(a - b) for a, b in zip(scores, reference)) <= 0.1


def test_a_passage_token_limit_keeps_that_many_passage_tokens(t5_dirs):
    path = t5_dirs["t5"]
    query = "which bear eats bamboo"
    head, passage, tail = _prompt_pieces(path, query, LONG_PASSAGE)
    encoder = Reranker(path, device="cpu")._family.encoder(512)
    limited, whole = encoder.encode([query, query], [LONG_PASSAGE, "blue sky"], [7, None])
    assert limited["input_ids"] == head + passage[:7] + tail
    assert whole["input_ids"] == sum(_prompt_pieces(path, query, "blue sky"), [])
