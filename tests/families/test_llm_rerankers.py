"""Decoder LLM rerankers (Qwen3-Reranker, bge-reranker-v2-gemma) on tiny random checkpoints.

The models (``decoder_dirs``, built by ``crossrank.testing.save_decoder``) have tokenizers trained
on the spot; scores are checked against references computed straight from the model's logits for
each family's documented prompt, one pair at a time and without padding.
"""

from __future__ import annotations

import math

import pytest
import torch

from crossrank import Reranker
from crossrank.testing import BGE_PROMPT, QWEN_INSTRUCTION, QWEN_PREFIX, QWEN_SUFFIX

LONG = " ".join(["the giant panda is a bear of china that eats bamboo in the rain."] * 12)
PAIRS = [
    ("what does a panda eat?", "The giant panda eats bamboo."),
    ("what does a panda eat?", "Paris is the capital city of France."),
    ("what is the capital of france", LONG),  # passage cut
    ("python", ""),  # an empty passage is scored, not dropped
    ("which bear eats bamboo", "A cat is an animal; a dog is an animal."),
    ("where is the rain?", "the rain is in the sky, the sky is blue"),
]


# ---------------------------------------------------------------------- references


def _load_reference(model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return tokenizer, AutoModelForCausalLM.from_pretrained(model_dir).eval()


def _last_logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, -1]


def qwen3_prompt(tokenizer, query, passage, max_length, instruction=QWEN_INSTRUCTION):
    """The Qwen3-Reranker model card's ``process_inputs`` for one pair."""
    prefix = tokenizer.encode(QWEN_PREFIX, add_special_tokens=False)
    suffix = tokenizer.encode(QWEN_SUFFIX, add_special_tokens=False)
    body = f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {passage}"
    room = max_length - len(prefix) - len(suffix)
    ids = tokenizer(body, add_special_tokens=False, truncation=True, max_length=room)["input_ids"]
    return prefix + ids + suffix


def qwen3_reference(model_dir, pairs, max_length, instruction=QWEN_INSTRUCTION):
    """logit("yes") − logit("no") at the last position, one pair at a time."""
    tokenizer, model = _load_reference(model_dir)
    yes = tokenizer.convert_tokens_to_ids("yes")
    no = tokenizer.convert_tokens_to_ids("no")
    scores = []
    for query, passage in pairs:
        logits = _last_logits(
            model, qwen3_prompt(tokenizer, query, passage, max_length, instruction)
        )
        scores.append(float(logits[yes] - logits[no]))
    return scores


def bge_prompt(tokenizer, query, passage, max_length, prompt=BGE_PROMPT):
    """FlagLLMReranker's prompt for one pair: <bos>A: q, \\n, B: p (cut), \\n, prompt."""
    q = tokenizer(
        "A: " + query, add_special_tokens=False, truncation=True, max_length=max_length * 3 // 4
    )["input_ids"]
    p = tokenizer(
        "B: " + passage, add_special_tokens=False, truncation=True, max_length=max_length
    )["input_ids"]
    sep = tokenizer("\n", add_special_tokens=False)["input_ids"]
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    first = [tokenizer.bos_token_id] + q
    second = (sep + p)[: max_length + len(sep) + len(prompt_ids) - len(first)]
    return first + second + sep + prompt_ids


def bge_reference(model_dir, pairs, max_length, prompt=BGE_PROMPT):
    """The "Yes" logit at the last position, one pair at a time."""
    tokenizer, model = _load_reference(model_dir)
    yes = tokenizer("Yes", add_special_tokens=False)["input_ids"][0]
    return [
        float(_last_logits(model, bge_prompt(tokenizer, q, p, max_length, prompt))[yes])
        for q, p in pairs
    ]


def reference(kind, model_dir, pairs, max_length, instruction=None):
    if "gemma" in kind:
        return bge_reference(model_dir, pairs, max_length, instruction or BGE_PROMPT)
    return qwen3_reference(model_dir, pairs, max_length, instruction or QWEN_INSTRUCTION)


# ---------------------------------------------------------------------- scores


@pytest.mark.parametrize(
    "kind, max_length",
    [("qwen3", 100), ("qwen3", 256), ("qwen2", 100), ("gemma", 48), ("gemma", 256), ("gemma2", 64)],
)
def test_scores_equal_reference_for_documented_prompt(decoder_dirs, kind, max_length):
    # a qwen2 checkpoint's prompt is not told by its config (mxbai-rerank-v2 is qwen2 too)
    prompt_format = "qwen3" if kind == "qwen2" else None
    reranker = Reranker(
        decoder_dirs[kind], max_length=max_length, batch_size=4, prompt_format=prompt_format
    )
    expected = reference(kind, decoder_dirs[kind], PAIRS, max_length)
    got = reranker.compute_score([list(p) for p in PAIRS])
    assert got == pytest.approx(expected, abs=1e-4)
    assert max(expected) - min(expected) > 0.1  # the scores differ, so equality says something


def test_bge_long_query_is_capped_like_flagllmreranker(decoder_dirs):
    pairs = [(" ".join(["what is the weather in the sky"] * 12), "blue sky and rain")]
    reranker = Reranker(decoder_dirs["gemma"], max_length=48)
    query_tokens = reranker.tokenizer("A: " + pairs[0][0], add_special_tokens=False)["input_ids"]
    assert len(query_tokens) > 48 * 3 // 4  # the cap applies
    got = reranker.compute_score([list(p) for p in pairs])
    assert got == pytest.approx(bge_reference(decoder_dirs["gemma"], pairs, 48), abs=1e-4)


def test_qwen3_long_query_is_cut_and_the_passage_keeps_room(decoder_dirs):
    reranker = Reranker(decoder_dirs["qwen3"], max_length=120)
    long_query = " ".join(["what is the weather in the sky"] * 12)
    ids = reranker.encoder.encode([long_query], [LONG])[0]["input_ids"]
    assert len(ids) == 120
    text = reranker.tokenizer.decode(ids)
    assert "<Query>: what is the weather" in text and text.endswith(QWEN_SUFFIX)
    kept_query = text.split("<Query>: ")[1].split("\n<Document>:")[0]
    assert 0 < len(kept_query) < len(long_query)
    passage = text.split("<Document>: ")[1].split("<|im_end|>")[0]
    assert LONG.startswith(passage) and len(passage) > 10


def test_long_passage_is_cut_to_max_length(decoder_dirs):
    for kind, expected_length in (("qwen3", 96), ("gemma", None)):
        reranker = Reranker(decoder_dirs[kind], max_length=96)
        ids = reranker.encoder.encode(["what is the capital of france"], [LONG])[0]["input_ids"]
        tokenizer = reranker.tokenizer
        if expected_length is None:  # bge: max_length for query + passage, the prompt on top
            expected_length = len(bge_prompt(tokenizer, "what is the capital of france", LONG, 96))
            assert ids[0] == tokenizer.bos_token_id
        assert len(ids) == expected_length


@pytest.mark.parametrize("kind", ["qwen3", "gemma"])
def test_left_padded_batches_equal_one_by_one(decoder_dirs, kind):
    reranker = Reranker(decoder_dirs[kind], max_length=128, batch_size=8)
    pairs = [list(p) for p in PAIRS]
    lengths = {len(f["input_ids"]) for f in reranker.encoder.encode(*zip(*pairs))}
    assert len(lengths) > 2  # batches really pad
    batched = reranker.compute_score(pairs)
    alone = [reranker.compute_score(pair, batch_size=1) for pair in pairs]
    assert batched == pytest.approx(alone, abs=1e-4)


def test_qwen3_normalized_score_is_p_yes(decoder_dirs):
    path = decoder_dirs["qwen3"]
    tokenizer, model = _load_reference(path)
    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    expected = []
    for query, passage in PAIRS:  # the model card's compute_logits: softmax over [no, yes]
        logits = _last_logits(model, qwen3_prompt(tokenizer, query, passage, 128))
        expected.append(float(torch.softmax(torch.stack([logits[no], logits[yes]]), 0)[1]))
    got = Reranker(path, max_length=128).compute_score([list(p) for p in PAIRS], normalize=True)
    assert got == pytest.approx(expected, abs=1e-5)


def test_gemma_normalized_score_is_sigmoid_of_yes_logit(decoder_dirs):
    reranker = Reranker(decoder_dirs["gemma"], max_length=128)
    raw = reranker.compute_score([list(p) for p in PAIRS])
    norm = reranker.compute_score([list(p) for p in PAIRS], normalize=True)
    assert norm == pytest.approx([1 / (1 + math.exp(-s)) for s in raw], abs=1e-9)


@pytest.mark.parametrize("kind", ["qwen3", "gemma"])
def test_instruction_replaces_the_default(decoder_dirs, kind):
    instruction = "Given a question about animals, find the passage that answers it"
    reranker = Reranker(decoder_dirs[kind], max_length=128, instruction=instruction)
    pairs = PAIRS[:3]
    got = reranker.compute_score([list(p) for p in pairs])
    assert got == pytest.approx(
        reference(kind, decoder_dirs[kind], pairs, 128, instruction), abs=1e-4
    )
    default = Reranker(decoder_dirs[kind], max_length=128).compute_score([list(p) for p in pairs])
    assert max(abs(a - b) for a, b in zip(got, default)) > 1e-3


@pytest.mark.parametrize("kind", ["qwen3", "gemma"])
def test_rank_orders_by_score_with_top_k_and_threshold(decoder_dirs, kind):
    reranker = Reranker(decoder_dirs[kind], max_length=128)
    query = "what does a panda eat?"
    docs = [p for _, p in PAIRS]
    scores = reranker.compute_score([[query, d] for d in docs], normalize=True)
    hits = reranker.rank(query, docs)
    assert [h.index for h in hits] == sorted(range(len(docs)), key=lambda i: -scores[i])
    assert [h.score for h in hits] == pytest.approx(sorted(scores, reverse=True), abs=1e-6)
    assert all(h.text == docs[h.index] for h in hits)
    threshold = sorted(scores)[len(scores) // 2]
    kept = reranker.rank(query, docs, top_k=2, threshold=threshold)
    assert [h.index for h in kept] == [h.index for h in hits if h.score >= threshold][:2]
    assert reranker.rank(query, []) == []


# ---------------------------------------------------------------------- detection and errors


def test_family_is_detected_from_model_type(decoder_dirs):
    assert Reranker(decoder_dirs["qwen3"]).prompt_format == "qwen3"
    assert Reranker(decoder_dirs["gemma"]).prompt_format == "bge"
    # Qwen's chat tokens and yes/no do not tell the Qwen3-Reranker prompt from mxbai-rerank-v2's
    for kind in ("qwen2", "llama-qwen"):
        with pytest.raises(ValueError, match="cannot tell.*prompt_format='qwen3'.*'mxbai'"):
            Reranker(decoder_dirs[kind])
    llama = Reranker(decoder_dirs["llama-qwen"], max_length=128, prompt_format="qwen3")
    assert llama.prompt_format == "qwen3"
    assert llama.compute_score([list(p) for p in PAIRS[:3]]) == pytest.approx(
        qwen3_reference(decoder_dirs["llama-qwen"], PAIRS[:3], 128), abs=1e-4
    )


def test_undetectable_family_asks_for_prompt_format(decoder_dirs):
    with pytest.raises(ValueError, match="prompt_format='qwen3'.*'bge'"):
        Reranker(decoder_dirs["llama-gemma"])
    reranker = Reranker(decoder_dirs["llama-gemma"], max_length=128, prompt_format="bge")
    assert reranker.compute_score([list(p) for p in PAIRS[:3]]) == pytest.approx(
        bge_reference(decoder_dirs["llama-gemma"], PAIRS[:3], 128), abs=1e-4
    )


def test_sequence_classification_decoder_stays_a_classifier(decoder_dirs):
    """A Qwen3ForSequenceClassification checkpoint is scored by its head, not as an LLM."""
    from transformers import AutoModelForSequenceClassification

    path = decoder_dirs["qwen3-seqcls"]
    reranker = Reranker(path, max_length=64)
    assert reranker.prompt_format is None
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    ids = reranker.encoder.encode([PAIRS[0][0]], [PAIRS[0][1]])[0]["input_ids"]
    with torch.no_grad():
        expected = float(model(input_ids=torch.tensor([ids])).logits[0, 0])
    assert reranker.compute_score(list(PAIRS[0])) == pytest.approx(expected, abs=1e-5)


def test_llm_options_are_checked(decoder_dirs, bert_dir):
    with pytest.raises(ValueError, match="instruction= applies to decoder LLM rerankers"):
        Reranker(bert_dir, instruction="find answers")
    with pytest.raises(ValueError, match="prompt_format= applies to decoder LLM rerankers"):
        Reranker(bert_dir, prompt_format="qwen3")
    with pytest.raises(ValueError, match="prompt_format must be one of"):
        Reranker(decoder_dirs["qwen3"], prompt_format="chatml")
    with pytest.raises(ValueError, match="instruction must be a non-empty str"):
        Reranker(decoder_dirs["qwen3"], instruction="  ")
    with pytest.raises(ValueError, match="max_length=32 leaves no room"):
        Reranker(decoder_dirs["qwen3"], max_length=32)


# ---------------------------------------------------------------------- FlagEmbedding


def test_gemma_scores_equal_flagllmreranker(decoder_dirs):
    flag = pytest.importorskip("FlagEmbedding", reason="FlagEmbedding needs transformers 4.x")
    path = decoder_dirs["gemma"]
    long_query = " ".join(["what is the weather in the sky"] * 12)  # capped at 3/4 of max_length
    pairs = [list(p) for p in PAIRS] + [[long_query, "blue sky and rain"]]
    reference_reranker = flag.FlagLLMReranker(path, use_fp16=False, devices="cpu")
    for max_length in (48, 128):
        expected = reference_reranker.compute_score(pairs, max_length=max_length, batch_size=4)
        assert max(expected) - min(expected) > 0.1
        got = Reranker(path, max_length=max_length, batch_size=4).compute_score(pairs)
        assert got == pytest.approx(expected, abs=1e-4)
    expected = reference_reranker.compute_score(pairs, max_length=128, normalize=True)
    got = Reranker(path, max_length=128).compute_score(pairs, normalize=True)
    assert got == pytest.approx(expected, abs=1e-5)
