"""long_documents="maxp": passages split into overlapping windows, each document scored by its best.

The "found at the end" tests use a BERT cross-encoder whose weights are set by hand so that its
score only says whether one chosen token is anywhere in the input (see ``needle_bert``): with it,
what truncation cuts off and what a window keeps decide the score, not chance.
"""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers

from crossrank import Reranker
from crossrank.testing import (
    BGE_PROMPT,
    QWEN_INSTRUCTION,
    QWEN_PREFIX,
    QWEN_SUFFIX,
    build_tokenizer,
)
from crossrank.windows import max_per_document, split_windows, window_overlap

NEEDLE = "bamboo"
FILLER = " ".join(["the sky is blue and the river water is cold."] * 30)
QUERY = "what does a panda eat?"
NEEDLE_AT_END = FILLER + " a giant panda eats bamboo."
SHORT_PAIRS = [
    ("what does a panda eat?", "The giant panda eats bamboo."),
    ("what does a panda eat?", "Paris is the capital city of France."),
    ("python", ""),
    ("which bear eats bamboo", "A cat is an animal; a dog is an animal."),
]
PRESENT, ABSENT = 10 * float(torch.tanh(torch.tensor(4.0))) - 5, -5.0


def needle_bert(path) -> str:
    """A 1-layer BERT cross-encoder scoring about +5 if ``NEEDLE`` is in the pair, else -5.

    Only the needle's word embedding is non-zero, so after the embedding LayerNorm it is
    ``(4, -4, 0, …)`` (hidden 32) and every other token is 0. Attention with zero query/key weights
    is uniform, so [CLS] receives ``1000 × (needle count / length) × (4, -4, 0, …)``, which the
    LayerNorm turns back into ``(4, -4, 0, …)`` whenever the needle occurs (≥ 1000/512 ≫ eps) and
    leaves at 0 otherwise; the feed-forward adds 0. The pooler (identity, tanh) and the classifier
    (10 × dim 0 − 5) then give ``10·tanh(4) − 5 ≈ 4.99`` or ``−5``, wherever the needle sits.
    """
    from transformers import BertConfig, BertForSequenceClassification

    tokenizer = build_tokenizer("bert")
    hidden = 32
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = BertForSequenceClassification(config).eval()
    needle = torch.zeros(hidden)
    needle[0], needle[1] = 1.0, -1.0
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.fill_(1.0)
        model.bert.embeddings.word_embeddings.weight[tokenizer.convert_tokens_to_ids(NEEDLE)] = (
            needle
        )
        attention = model.bert.encoder.layer[0].attention
        attention.self.value.weight.copy_(torch.eye(hidden))
        attention.output.dense.weight.copy_(1000 * torch.eye(hidden))
        model.bert.pooler.dense.weight.copy_(torch.eye(hidden))
        model.classifier.weight[0, 0] = 10.0
        model.classifier.bias.fill_(-5.0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def needle_dir(tmp_path_factory):
    return needle_bert(tmp_path_factory.mktemp("needle"))


# ---------------------------------------------------------------------- found with maxp


def test_needle_model_scores_presence_anywhere(needle_dir):
    reranker = Reranker(needle_dir, max_length=512)
    scores = reranker.compute_score(
        [[QUERY, "a panda eats bamboo."], [QUERY, "bamboo " + FILLER], [QUERY, FILLER]]
    )
    assert scores == pytest.approx([PRESENT, PRESENT, ABSENT], abs=1e-4)


def test_sentence_at_the_end_is_found_with_maxp_and_missed_with_truncate(needle_dir):
    docs = ["Paris is the capital city of France.", NEEDLE_AT_END, FILLER]
    truncate = Reranker(needle_dir, max_length=64)
    maxp = Reranker(needle_dir, max_length=64, long_documents="maxp", stride=8)
    assert len(maxp.tokenizer(NEEDLE_AT_END)["input_ids"]) > 5 * 64  # many windows

    pairs = [[QUERY, d] for d in docs]
    assert truncate.compute_score(pairs) == pytest.approx([ABSENT] * 3, abs=1e-4)
    assert maxp.compute_score(pairs) == pytest.approx([ABSENT, PRESENT, ABSENT], abs=1e-4)

    hits = maxp.rank(QUERY, docs, top_k=1, threshold=0.5)
    assert [(h.index, h.text) for h in hits] == [(1, NEEDLE_AT_END)]
    assert truncate.rank(QUERY, docs, threshold=0.5) == []


def test_needle_anywhere_in_a_long_passage_is_found(needle_dir):
    """Windows cover the whole passage: the needle is found at every position, edges included."""
    reranker = Reranker(needle_dir, max_length=32, long_documents="maxp", stride=4)
    words = FILLER.split()[:60]
    pairs = [[QUERY, " ".join(words[:i] + [NEEDLE] + words[i:])] for i in range(0, 60, 7)]
    assert reranker.compute_score(pairs) == pytest.approx([PRESENT] * len(pairs), abs=1e-4)


# ---------------------------------------------------------------------- equal to truncate / references


@pytest.mark.parametrize("name", ["bert", "xlm-roberta", "electra", "deberta-v2"])
def test_maxp_on_short_passages_equals_truncate(model_dirs, name):
    pairs = [list(p) for p in SHORT_PAIRS]
    truncate = Reranker(model_dirs[name], max_length=64).compute_score(pairs)
    maxp = Reranker(model_dirs[name], max_length=64, long_documents="maxp").compute_score(pairs)
    assert maxp == truncate


@pytest.mark.parametrize("kind", ["qwen3", "gemma"])
def test_maxp_on_short_passages_equals_truncate_for_decoders(decoder_dirs, kind):
    pairs = [list(p) for p in SHORT_PAIRS]
    truncate = Reranker(decoder_dirs[kind], max_length=128).compute_score(pairs)
    maxp = Reranker(decoder_dirs[kind], max_length=128, long_documents="maxp").compute_score(pairs)
    assert maxp == truncate


def reference_windows(ids, room, overlap):
    """Windows written out here: starts 0, step, 2·step, … until a window reaches the end."""
    step = room - overlap
    starts = [0]
    while starts[-1] + room < len(ids):
        starts.append(starts[-1] + step)
    return [ids[s : s + room] for s in starts]


@pytest.mark.parametrize("name", ["bert", "xlm-roberta"])
@pytest.mark.parametrize("stride", [0, 5, 100])
def test_maxp_equals_best_window_scored_alone(model_dirs, name, stride):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path, max_length = model_dirs[name], 32
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    roberta = "token_type_ids" not in tokenizer.model_input_names
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    passage = NEEDLE_AT_END[-400:]
    q = tokenizer(QUERY, add_special_tokens=False)["input_ids"]
    p = tokenizer(passage, add_special_tokens=False)["input_ids"]
    room = max_length - len(q) - (4 if roberta else 3)
    windows = reference_windows(p, room, min(stride, room // 2))
    assert len(windows) > 3
    scores = []
    for w in windows:
        mid = [sep, sep] if roberta else [sep]
        ids = [cls] + q + mid + w + [sep]
        extra = {}
        if not roberta:
            types = [0] * (len(q) + 2) + [1] * (len(w) + 1)
            extra = {"token_type_ids": torch.tensor([types])}
        with torch.no_grad():
            scores.append(float(model(input_ids=torch.tensor([ids]), **extra).logits[0, 0]))
    reranker = Reranker(path, max_length=max_length, long_documents="maxp", stride=stride)
    assert reranker.compute_score([QUERY, passage]) == pytest.approx(max(scores), abs=1e-5)
    assert max(scores) - min(scores) > 1e-3  # the windows differ, so taking the max says something


def test_maxp_equals_best_window_for_qwen3(decoder_dirs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, max_length, stride = decoder_dirs["qwen3"], 100, 6
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    prefix = tokenizer.encode(QWEN_PREFIX, add_special_tokens=False)
    suffix = tokenizer.encode(QWEN_SUFFIX, add_special_tokens=False)
    head_text = f"<Instruct>: {QWEN_INSTRUCTION}\n<Query>: {QUERY}\n<Document>:"
    # Qwen's pre-tokenizer splits before the space after ":", so the passage tokenizes apart
    head = prefix + tokenizer.encode(head_text, add_special_tokens=False)
    doc = tokenizer.encode(" " + NEEDLE_AT_END[-300:], add_special_tokens=False)
    room = max_length - len(head) - len(suffix)
    scores = []
    for w in reference_windows(doc, room, min(stride, room // 2)):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([head + w + suffix])).logits[0, -1]
        scores.append(float(logits[yes] - logits[no]))
    assert len(scores) > 3
    reranker = Reranker(path, max_length=max_length, long_documents="maxp", stride=stride)
    got = reranker.compute_score([QUERY, NEEDLE_AT_END[-300:]])
    assert got == pytest.approx(max(scores), abs=1e-4)


def test_maxp_equals_best_window_for_bge_gemma(decoder_dirs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, max_length, stride = decoder_dirs["gemma"], 40, 3
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    yes = encode("Yes")[0]
    sep, prompt = encode("\n"), encode(BGE_PROMPT)
    first = [tokenizer.bos_token_id] + encode("A: " + QUERY)
    marker = encode("B:")  # every window is still passage "B: …"
    doc = encode(" " + NEEDLE_AT_END[-600:])
    room = min(max_length, max_length + len(prompt) - len(first)) - len(marker)
    scores = []
    for w in reference_windows(doc, room, min(stride, room // 2)):
        ids = first + sep + marker + w + sep + prompt
        with torch.no_grad():
            scores.append(float(model(input_ids=torch.tensor([ids])).logits[0, -1, yes]))
    assert len(scores) > 3
    reranker = Reranker(path, max_length=max_length, long_documents="maxp", stride=stride)
    got = reranker.compute_score([QUERY, NEEDLE_AT_END[-600:]])
    assert got == pytest.approx(max(scores), abs=1e-4)


# ---------------------------------------------------------------------- batching and rules


def test_windows_of_all_documents_share_batches(needle_dir):
    reranker = Reranker(needle_dir, max_length=64, batch_size=64, long_documents="maxp")
    docs = [NEEDLE_AT_END, FILLER, FILLER[:200]]
    features, owners = reranker.encoder.encode_windows([QUERY] * 3, docs, reranker.stride)
    assert sorted(set(owners)) == [0, 1, 2] and len(owners) > 6
    rows = []
    forward = reranker.model.forward

    def counting_forward(*args, **kwargs):
        rows.append(kwargs["input_ids"].shape[0])
        return forward(*args, **kwargs)

    reranker.model.forward = counting_forward
    scores = reranker.compute_score([[QUERY, d] for d in docs])
    assert rows == [len(features)]  # one forward for every window of every document
    assert scores == pytest.approx([PRESENT, ABSENT, ABSENT], abs=1e-4)


@pytest.mark.parametrize("room", [1, 2, 5, 8])
def test_split_windows_follows_the_tokenizers_stride_rule(room):
    """Our windows are the tokenizers library's ``Encoding.truncate(room, stride)`` windows."""
    vocab = {str(i): i for i in range(40)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    for length in range(0, 30):
        for overlap in range(0, room // 2 + 1):
            if overlap >= room:
                continue
            encoding = tok.encode(" ".join(str(i) for i in range(length)))
            expected = [encoding.ids]
            if length > room:
                encoding.truncate(room, stride=overlap)
                expected = [encoding.ids] + [o.ids for o in encoding.overflowing]
            assert split_windows(list(range(length)), room, overlap) == expected


def test_window_helpers():
    assert window_overlap(128, 100) == 50 and window_overlap(3, 100) == 3
    assert window_overlap(5, 1) == 0
    assert max_per_document([1.0, 3.0, -2.0, 0.5], [1, 1, 0, 1], 2) == [-2.0, 3.0]
    with pytest.raises(ValueError, match="overlap"):
        split_windows([1, 2, 3], room=2, overlap=2)


def test_slow_tokenizer_windows_equal_fast(model_dirs, tmp_path):
    """The Python-tokenizer route (``prepare_for_model`` per window) gives the same windows."""
    import transformers

    from crossrank.families.cross_encoder import PairEncoder

    fast = transformers.AutoTokenizer.from_pretrained(model_dirs["bert"])
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(sorted(fast.get_vocab(), key=fast.get_vocab().get)) + "\n")
    slow = transformers.BertTokenizer(str(vocab), do_lower_case=True)
    if slow.is_fast:
        pytest.skip("this transformers has no Python (slow) BertTokenizer")
    queries, passages = [QUERY, QUERY, "bear"], [NEEDLE_AT_END[-300:], "short one", ""]
    fast_features = PairEncoder(fast, 32).encode_windows(queries, passages, stride=4)
    assert fast_features == PairEncoder(slow, 32).encode_windows(queries, passages, stride=4)
    assert len(fast_features[0]) > 5


def test_long_document_options_are_checked(bert_dir):
    with pytest.raises(ValueError, match="long_documents must be 'truncate' or 'maxp'"):
        Reranker(bert_dir, long_documents="firstp")
    for stride in (-1, 2.5, True, "8"):
        with pytest.raises(ValueError, match="stride must be an int >= 0"):
            Reranker(bert_dir, stride=stride)
