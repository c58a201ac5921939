"""Layer-wise and lightweight drop-ins equal FlagEmbedding's own classes on the same weights.

FlagEmbedding imports only with transformers 4.x (CI's transformers-4.57 venv); elsewhere this file
is skipped. FlagEmbedding 1.4.2's lightweight model code (``CostWiseGemmaForCausalLM``) calls Gemma
2's decoder layer the way transformers <= 4.46 took it, so its reference scores are taken only
where it runs (a venv with transformers==4.46.3); otherwise those tests skip with that reason.
"""

from __future__ import annotations

import numpy as np
import pytest

from crossrank import LayerWiseFlagLLMReranker, LightWeightFlagLLMReranker, Reranker
from crossrank.testing import SCORING_PAIRS
from crossrank.testing.layerwise import save_layerwise

flag = pytest.importorskip("FlagEmbedding", reason="FlagEmbedding needs transformers 4.x")

PAIRS = [list(p) for p in SCORING_PAIRS] + [
    [" ".join(["what is the history of the giant panda in china"] * 4), "bamboo forest " * 30]
]


def largest_difference(expected, got) -> float:
    expected, got = np.asarray(expected, dtype=float), np.asarray(got, dtype=float)
    assert expected.shape == got.shape
    return float(np.max(np.abs(expected - got)))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("layerwise")
    return {kind: save_layerwise(root / kind, kind) for kind in ("layerwise", "lightweight")}


@pytest.fixture(scope="module")
def lightweight_reference(checkpoints):
    """FlagEmbedding's LightWeightFlagLLMReranker, where its Gemma 2 code runs."""
    reference = flag.LightWeightFlagLLMReranker(checkpoints["lightweight"], devices="cpu")
    try:
        reference.compute_score(PAIRS[:1])
    except TypeError as error:  # Gemma2DecoderLayer.forward() missing 'position_embeddings'
        pytest.skip(f"FlagEmbedding's CostWiseGemma needs transformers <= 4.46 here ({error})")
    return reference


@pytest.mark.parametrize("kind", ["layerwise", "lightweight"])
def test_flagembedding_model_classes_load_the_tiny_checkpoints_completely(checkpoints, kind):
    from FlagEmbedding.inference.reranker.decoder_only.models import (
        gemma_model,
        modeling_minicpm_reranker,
    )

    model_class = (
        modeling_minicpm_reranker.LayerWiseMiniCPMForCausalLM
        if kind == "layerwise"
        else gemma_model.CostWiseGemmaForCausalLM
    )
    _, info = model_class.from_pretrained(checkpoints[kind], output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


@pytest.mark.parametrize("cutoff_layers", [None, 2, [3], [2, 4], [4, 2], [3, 3], [1, 3]])
@pytest.mark.parametrize("max_length", [24, 64])
def test_layerwise_equals_flagembedding(checkpoints, cutoff_layers, max_length):
    path = checkpoints["layerwise"]
    reference = flag.LayerWiseFlagLLMReranker(path, devices="cpu", max_length=max_length)
    reranker = LayerWiseFlagLLMReranker(path, devices="cpu", max_length=max_length)
    expected = reference.compute_score(PAIRS, cutoff_layers=cutoff_layers, batch_size=3)
    got = reranker.compute_score(PAIRS, cutoff_layers=cutoff_layers, batch_size=3)
    assert type(got) is type(expected) is list
    assert largest_difference(expected, got) <= 1e-5


def test_layerwise_constructor_options_prompt_and_normalize_equal_flagembedding(checkpoints):
    path = checkpoints["layerwise"]
    options = dict(devices="cpu", cutoff_layers=[3], max_length=48, query_max_length=12)
    reference = flag.LayerWiseFlagLLMReranker(path, normalize=True, **options)
    reranker = LayerWiseFlagLLMReranker(path, normalize=True, **options)
    assert largest_difference(reference.compute_score(PAIRS), reranker.compute_score(PAIRS)) <= 1e-6
    call = dict(prompt="Does B answer A?", max_length=32, normalize=False, cutoff_layers=4)
    expected, got = reference.compute_score(PAIRS, **call), reranker.compute_score(PAIRS, **call)
    assert largest_difference(expected, got) <= 1e-5
    one = reranker.compute_score(PAIRS[0])  # one pair: still a list, as FlagEmbedding 1.4
    assert one == pytest.approx(reference.compute_score(PAIRS[0]), abs=1e-6) and len(one) == 1


@pytest.mark.parametrize("scaling", ["linear", "dynamic"])
def test_layerwise_rope_scaling_equals_flagembedding(checkpoints, tmp_path, scaling):
    import json
    import shutil

    path = shutil.copytree(checkpoints["layerwise"], tmp_path / scaling)
    config = json.loads((path / "config.json").read_text())
    config.update(rope_scaling={"type": scaling, "factor": 2.0}, rope_theta=5000.0)
    (path / "config.json").write_text(json.dumps(config))
    reference = flag.LayerWiseFlagLLMReranker(str(path), devices="cpu", max_length=48)
    reranker = LayerWiseFlagLLMReranker(str(path), devices="cpu", max_length=48)
    expected, got = reference.compute_score(PAIRS), reranker.compute_score(PAIRS)
    assert largest_difference(expected, got) <= 1e-5


def test_reranker_scores_a_layerwise_checkpoint_as_flagembedding_by_default(checkpoints):
    path = checkpoints["layerwise"]
    expected = flag.LayerWiseFlagLLMReranker(path, devices="cpu", max_length=48).compute_score(
        PAIRS
    )
    got = Reranker(path, device="cpu", max_length=48).compute_score(PAIRS)
    assert largest_difference(expected, got) <= 1e-5


@pytest.mark.parametrize(
    "cutoff_layers, compress_layers, compress_ratio",
    [
        (None, None, None),  # the constructor's: last layer, no compression (ratio 1)
        ([3], [2], 2),
        ([4], [1, 2, 3], 2),
        ([2, 4], [3], 4),
        ([4], [2], 8),
        ([3], [0, 1], 2),  # layer 0 is never compressed
        ([4, 3], [1], 2),
    ],
)
@pytest.mark.parametrize("max_length", [24, 64])
def test_lightweight_equals_flagembedding(
    checkpoints, lightweight_reference, cutoff_layers, compress_layers, compress_ratio, max_length
):
    path = checkpoints["lightweight"]
    reranker = LightWeightFlagLLMReranker(path, devices="cpu")
    call = dict(cutoff_layers=cutoff_layers, compress_layers=compress_layers,
                compress_ratio=compress_ratio, max_length=max_length, batch_size=3)  # fmt: skip
    expected = lightweight_reference.compute_score(PAIRS, **call)
    got = reranker.compute_score(PAIRS, **call)
    assert type(got) is type(expected) is list
    assert largest_difference(expected, got) <= 1e-5


def test_lightweight_constructor_options_equal_flagembedding(checkpoints, lightweight_reference):
    path = checkpoints["lightweight"]
    options = dict(devices="cpu", cutoff_layers=[3], compress_layers=[2], compress_ratio=2,
                   prompt="Is B an answer to A?", max_length=40, normalize=True)  # fmt: skip
    reference = flag.LightWeightFlagLLMReranker(path, **options)
    reranker = LightWeightFlagLLMReranker(path, **options)
    assert largest_difference(reference.compute_score(PAIRS), reranker.compute_score(PAIRS)) <= 1e-6
    expected = reference.compute_score(PAIRS, compress_layer=[1], normalize=False)  # deprecated
    got = reranker.compute_score(PAIRS, compress_layer=[1], normalize=False)
    assert largest_difference(expected, got) <= 1e-5


def test_reranker_scores_a_lightweight_checkpoint_as_flagembedding_by_default(
    checkpoints, lightweight_reference
):
    expected = lightweight_reference.compute_score(PAIRS, max_length=48)
    got = Reranker(checkpoints["lightweight"], device="cpu", max_length=48).compute_score(PAIRS)
    assert largest_difference(expected, got) <= 1e-5


@pytest.mark.parametrize(
    "ours, theirs_name",
    [
        (LayerWiseFlagLLMReranker, "LayerWiseFlagLLMReranker"),
        (LightWeightFlagLLMReranker, "LightWeightFlagLLMReranker"),
    ],
)
def test_signatures_match_installed_flagembedding(ours, theirs_name):
    """Same parameter names, order and defaults as FlagEmbedding's classes (whose compute_score
    forwards to compute_score_single_gpu, which names the per-call options)."""
    import inspect

    def parameters(function):
        return [(n, p.default) for n, p in inspect.signature(function).parameters.items()]

    theirs = getattr(flag, theirs_name)
    assert parameters(ours.__init__) == parameters(theirs.__init__)
    single = [(n, d) for n, d in parameters(theirs.compute_score_single_gpu) if n != "device"]
    assert parameters(ours.compute_score) == single
