"""mxbai-rerank-v2 (``prompt_format="mxbai"``) on a tiny random Qwen2 checkpoint.

Scores are checked against the ``mxbai-rerank`` package's ``MxbaiRerankV2`` itself (it runs on
transformers 4 only: it builds pairs with ``prepare_for_model``; CI installs it in the
transformers-4.57 venv) and, on every transformers, against its algorithm written out here in
plain transformers, one pair at a time and without padding.
"""

from __future__ import annotations

import pytest
import torch

from crossrank import Reranker

# MxbaiRerankV2's fixed texts (mxbai_rerank/mxbai_rerank_v2.py, 0.1.6), written out here
# independently of crossrank.
SYSTEM = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\n<|im_start|>user\n"
)
ASSISTANT = "<|im_end|>\n<|im_start|>assistant\n"
TASK = (
    "You are a search relevance expert who evaluates how well documents match search queries. "
    "For each query-document pair, carefully analyze the semantic relationship between them, "
    "then provide your binary relevance judgment (0 for not relevant, 1 for relevant).\n"
    "Relevance:"
)
LONG = " ".join(["the giant panda is a bear of china that eats bamboo in the rain."] * 12)
PAIRS = [
    ("what does a panda eat?", "The giant panda eats bamboo."),
    ("what does a panda eat?", "Paris is the capital city of France."),
    ("what is the capital of france", LONG),  # passage cut
    ("python", ""),  # an empty passage is scored, not dropped
    (" ".join(["what is the weather in the sky"] * 12), "blue sky and rain " * 20),  # query cut
]
INSTRUCTION = "Find the passage that answers a question about animals"


def documented_reference(path, pairs, max_length, instruction=None):
    """MxbaiRerankV2.predict's algorithm, one pair at a time: logit("1") − logit("0")."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()

    def ids(text, **cap):
        return tokenizer(text, add_special_tokens=False, **cap)["input_ids"]

    one, zero = ids("1")[0], ids("0")[0]
    sep = ids("\n")
    scores = []
    for query, passage in pairs:
        line = f"instruction: {instruction}\n" if instruction else ""
        q = ids(f"{line}query: {query}", truncation=True, max_length=max_length * 3 // 4)
        d = ids(f"document: {passage}")
        # prepare_for_model(q, sep + d, truncation="only_second", max_length=max_length)
        second = (sep + d)[: max_length - len(q)]
        prompt = ids(SYSTEM) + q + second + sep + ids(TASK) + ids(ASSISTANT)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt])).logits[0, -1]
        scores.append(float(logits[one] - logits[zero]))
    return scores


def _crossrank(path, max_length, instruction=None, **options):
    return Reranker(
        path,
        max_length=max_length,
        prompt_format="mxbai",
        instruction=instruction,
        batch_size=2,
        **options,
    )


@pytest.fixture(scope="module")
def mxbai_dir(decoder_dirs):
    return decoder_dirs["qwen2"]


@pytest.mark.parametrize("max_length", [48, 100, 300])
@pytest.mark.parametrize("instruction", [None, INSTRUCTION])
def test_scores_equal_the_documented_algorithm(mxbai_dir, max_length, instruction):
    expected = documented_reference(mxbai_dir, PAIRS, max_length, instruction)
    got = _crossrank(mxbai_dir, max_length, instruction).compute_score([list(p) for p in PAIRS])
    assert got == pytest.approx(expected, abs=1e-5)
    assert max(expected) - min(expected) > 0.1  # the scores differ, so equality says something


def test_scores_equal_the_mxbai_rerank_package(mxbai_dir):
    package = pytest.importorskip("mxbai_rerank", reason="pip install mxbai-rerank")
    from transformers import AutoTokenizer

    if not hasattr(AutoTokenizer.from_pretrained(mxbai_dir), "prepare_for_model"):
        pytest.skip("mxbai-rerank builds pairs with prepare_for_model (transformers 4 only)")
    queries, passages = [q for q, _ in PAIRS], [p for _, p in PAIRS]
    for max_length in (48, 100, 300):
        for instruction in (None, INSTRUCTION):
            reference = package.MxbaiRerankV2(mxbai_dir, max_length=max_length, device="cpu")
            expected = reference.predict(queries, passages, instruction=instruction).tolist()
            crossrank = _crossrank(mxbai_dir, max_length, instruction)
            got = crossrank.compute_score([list(p) for p in PAIRS])
            assert got == pytest.approx(expected, abs=1e-5)
            # the reference written out in this module is the package's algorithm
            documented = documented_reference(mxbai_dir, PAIRS, max_length, instruction)
            assert documented == pytest.approx(expected, abs=1e-5)


def test_prompt_reads_as_mxbai_rerank_writes_it(mxbai_dir):
    reranker = _crossrank(mxbai_dir, 300, INSTRUCTION)
    ids = reranker.encoder.encode(["what does a panda eat?"], ["The giant panda eats bamboo."])
    text = reranker.tokenizer.decode(ids[0]["input_ids"])
    body = f"instruction: {INSTRUCTION}\nquery: what does a panda eat?\n"
    assert text == f"{SYSTEM}{body}document: The giant panda eats bamboo.\n{TASK}{ASSISTANT}"
    tokenizer = reranker.tokenizer
    zero_one = [tokenizer("0", add_special_tokens=False)["input_ids"][0]]
    zero_one.append(tokenizer("1", add_special_tokens=False)["input_ids"][0])
    assert reranker.encoder.label_token_ids == zero_one


def test_left_padded_batches_equal_one_by_one(mxbai_dir):
    reranker = _crossrank(mxbai_dir, 128)
    pairs = [list(p) for p in PAIRS]
    batched = reranker.compute_score(pairs, batch_size=8)
    alone = [reranker.compute_score(pair, batch_size=1) for pair in pairs]
    assert batched == pytest.approx(alone, abs=1e-5)


def test_maxp_scores_a_fitting_passage_as_truncate_and_keeps_the_best_window(mxbai_dir):
    truncate = _crossrank(mxbai_dir, 96)
    maxp = _crossrank(mxbai_dir, 96, long_documents="maxp", stride=16)
    short, long = [list(PAIRS[0])], [list(PAIRS[2])]
    assert maxp.compute_score(short) == pytest.approx(truncate.compute_score(short), abs=1e-6)
    features, owners = maxp.encoder.encode_windows(*zip(*long), stride=16)
    assert len(features) > 1 and set(owners) == {0}
    assert features[0] == truncate.encoder.encode(*zip(*long))[0]  # the first window is it
    assert all(len(f["input_ids"]) <= len(features[0]["input_ids"]) for f in features)
    assert maxp.compute_score(long)[0] >= truncate.compute_score(long)[0] - 1e-6


def test_a_qwen2_decoder_is_refused_without_prompt_format(mxbai_dir):
    with pytest.raises(ValueError) as error:
        Reranker(mxbai_dir)
    message = str(error.value)
    assert "'qwen2'" in message and "cannot tell" in message
    for choice in ("'qwen3'", "'bge'", "'mxbai'"):
        assert f"prompt_format={choice}" in message
