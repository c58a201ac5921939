"""Layer-wise and lightweight LLM rerankers on crossrank alone (any transformers, no FlagEmbedding).

Equality with FlagEmbedding's own classes is in tests/compat/test_flag_layerwise.py (transformers 4
only); here: detection, loading without custom code, the options and their refusals, token
compression against its definition, and scores that do not depend on how pairs are batched.
"""

from __future__ import annotations

import json
import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from crossrank import LayerWiseFlagLLMReranker, LightWeightFlagLLMReranker, ModelLoadError, Reranker
from crossrank.families.layerwise import layerwise_family
from crossrank.families.layerwise_checkpoint import layerwise_kind
from crossrank.families.layerwise_models import compress_passages
from crossrank.testing import LONG_PASSAGE, SCORING_PAIRS, save_decoder, save_model
from crossrank.testing.layerwise import save_layerwise

PAIRS = [list(p) for p in SCORING_PAIRS]
NAMES = {"layerwise": "layer-wise LLM reranker", "lightweight": "lightweight LLM reranker"}
DROP_INS = {"layerwise": LayerWiseFlagLLMReranker, "lightweight": LightWeightFlagLLMReranker}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("layerwise")
    return {kind: save_layerwise(root / kind, kind) for kind in NAMES}


def edited_copy(source, target, **changes):
    """``source`` checkpoint copied to ``target`` with config.json entries changed."""
    import shutil

    shutil.copytree(source, target)
    path = os.path.join(target, "config.json")
    with open(path, encoding="utf-8") as stream:
        config = json.load(stream)
    config.update(changes)
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(config, stream)
    return os.fspath(target)


@pytest.mark.parametrize("kind", list(NAMES))
def test_detected_from_the_config_and_loaded_without_flagembedding(checkpoints, kind, monkeypatch):
    monkeypatch.setitem(sys.modules, "FlagEmbedding", None)  # importing it would fail
    reranker = Reranker(checkpoints[kind], device="cpu", max_length=48)
    assert reranker.family == reranker.info()["family"] == NAMES[kind]
    scores = reranker.compute_score(PAIRS)
    assert len(scores) == len(PAIRS) and len(set(scores)) == len(PAIRS)


def test_detection_reads_architectures_auto_map_and_model_type():
    auto = {"AutoModelForCausalLM": "modeling_minicpm_reranker.LayerWiseMiniCPMForCausalLM"}
    assert layerwise_kind(SimpleNamespace(architectures=None, auto_map=auto)) == "layerwise"
    assert layerwise_kind(SimpleNamespace(model_type="cost_wise_gemma")) == "lightweight"
    minicpm = SimpleNamespace(model_type="minicpm", start_layer=8, head_type="simple")
    assert layerwise_kind(minicpm) == "layerwise"
    assert layerwise_kind(SimpleNamespace(model_type="minicpm")) is None  # a plain MiniCPM LLM
    assert layerwise_kind(SimpleNamespace(model_type="gemma2")) is None


def test_a_checkpoint_declaring_its_custom_code_loads_without_trust_remote_code(
    checkpoints, tmp_path
):
    # as on the hub: auto_map names modeling files crossrank neither has nor needs
    auto_map = {
        "AutoConfig": "configuration_minicpm_reranker.LayerWiseMiniCPMConfig",
        "AutoModelForCausalLM": "modeling_minicpm_reranker.LayerWiseMiniCPMForCausalLM",
    }
    path = edited_copy(checkpoints["layerwise"], tmp_path / "hub", auto_map=auto_map)
    expected = Reranker(checkpoints["layerwise"], device="cpu").compute_score(PAIRS)
    assert Reranker(path, device="cpu").compute_score(PAIRS) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("kind", list(NAMES))
def test_scores_do_not_depend_on_the_batch(checkpoints, kind):
    options = {"compress_ratio": 2, "compress_layers": [2]} if kind == "lightweight" else {}
    reranker = DROP_INS[kind](checkpoints[kind], devices="cpu", max_length=40, **options)
    pairs = PAIRS + [["q", "a short one"]]
    alone = [reranker.compute_score(pair, batch_size=1)[0] for pair in pairs]
    assert reranker.compute_score(pairs, batch_size=16) == pytest.approx(alone, abs=1e-5)


def test_several_cutoff_layers_give_one_list_per_layer_paired_as_flagembedding(checkpoints):
    reranker = LayerWiseFlagLLMReranker(checkpoints["layerwise"], devices="cpu", max_length=48)
    both = reranker.compute_score(PAIRS, cutoff_layers=[2, 4])
    assert both[0] == pytest.approx(reranker.compute_score(PAIRS, cutoff_layers=2), abs=1e-6)
    assert both[1] == pytest.approx(reranker.compute_score(PAIRS, cutoff_layers=[4]), abs=1e-6)
    assert both[1] == pytest.approx(reranker.compute_score(PAIRS), abs=1e-6)  # default: last
    # FlagEmbedding reads the ascending layers with the heads in the order given (start_layer 2)
    assert reranker.reranker.model_family.all_outputs([4, 2]) == [(2, 2), (4, 0)]
    lightweight = Reranker(checkpoints["lightweight"], device="cpu").model_family
    assert lightweight.all_outputs([4, 2]) == [(2, 0), (4, 1)]  # lm_head[i] for output i


def test_compression_changes_only_what_it_should(checkpoints):
    reranker = LightWeightFlagLLMReranker(checkpoints["lightweight"], devices="cpu", max_length=48)
    plain = reranker.compute_score(PAIRS, cutoff_layers=[3], compress_ratio=1)
    assert reranker.compute_score(PAIRS, cutoff_layers=[3], compress_layers=[]) == plain
    compressed = reranker.compute_score(PAIRS, cutoff_layers=[3], compress_ratio=2)
    assert compressed == plain  # the default compress_layers=[8] lies beyond these 4 layers
    after = reranker.compute_score(PAIRS, cutoff_layers=[3], compress_layers=[3], compress_ratio=2)
    assert after == pytest.approx(plain, abs=1e-6)  # compressing at the cutoff layer: unused
    before = reranker.compute_score(PAIRS, cutoff_layers=[3], compress_layers=[2], compress_ratio=2)
    assert max(abs(a - b) for a, b in zip(before, plain)) > 1e-3


def test_compress_passages_averages_runs_of_passage_tokens():
    hidden = torch.arange(2 * 8, dtype=torch.float32).view(2, 8, 1)
    mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])
    # row 0: query 2, passage 5, prompt 1; row 1: query 1, passage 3, prompt 1
    new_hidden, new_mask = compress_passages(hidden, mask, [2, 1], [1, 1], ratio=2)
    assert new_mask.tolist() == [[1] * 6, [1] * 4 + [0] * 2]
    assert new_hidden[0, :, 0].tolist() == [0, 1, 2.5, 4.5, 6, 7]
    assert new_hidden[1, :4, 0].tolist() == [8, 9.5, 11, 12]


@pytest.mark.parametrize("kind", list(NAMES))
def test_long_documents_in_windows(checkpoints, kind):
    path = checkpoints[kind]
    windows = Reranker(path, device="cpu", max_length=32, long_documents="maxp", stride=8)
    truncated = Reranker(path, device="cpu", max_length=32)
    short = ["what is a panda?", "a bear of china"]
    assert windows.compute_score([short]) == pytest.approx(truncated.compute_score([short]))
    hits = windows.rank("what is a panda?", ["a bear of china", LONG_PASSAGE], normalize=False)
    assert sorted(h.index for h in hits) == [0, 1]
    assert windows.stats()["features_scored"] > 3  # the long passage went in several windows


def test_drop_in_return_types_and_normalize(checkpoints):
    reranker = LayerWiseFlagLLMReranker(checkpoints["layerwise"], devices="cpu")
    raw = reranker.compute_score(PAIRS[0])
    assert isinstance(raw, list) and len(raw) == 1  # one pair: a list, as FlagEmbedding 1.4
    assert reranker.compute_score([]) == []
    assert reranker.compute_score(PAIRS[0], normalize=True)[0] == pytest.approx(
        1 / (1 + np.exp(-raw[0]))
    )
    several = LayerWiseFlagLLMReranker(checkpoints["layerwise"], devices=["cpu", "cpu"])
    scores = several.compute_score(PAIRS)
    assert isinstance(scores, np.ndarray)
    assert scores.tolist() == pytest.approx(reranker.compute_score(PAIRS), abs=1e-5)


def test_bad_options_are_refused_with_their_names(checkpoints):
    layerwise, lightweight = checkpoints["layerwise"], checkpoints["lightweight"]
    with pytest.raises(ValueError, match=r"cutoff_layers=\[1\].*layers 2\.\.4"):
        LayerWiseFlagLLMReranker(layerwise, devices="cpu", cutoff_layers=[1])
    reranker = LightWeightFlagLLMReranker(lightweight, devices="cpu")
    with pytest.raises(TypeError, match="cutoff_layers"):
        reranker.compute_score(PAIRS, cutoff_layers="3")
    with pytest.raises(ValueError, match="compress_ratio"):
        reranker.compute_score(PAIRS, compress_ratio=0)
    with pytest.raises(TypeError, match="compress_layers"):
        reranker.compute_score(PAIRS, compress_layers="8")
    with pytest.raises(TypeError, match="truncation"):
        reranker.compute_score(PAIRS, truncation=False)
    with pytest.raises(ValueError, match="prompt_format"):
        Reranker(layerwise, device="cpu", prompt_format="bge")


def test_drop_ins_name_the_class_for_other_checkpoints(checkpoints, tmp_path):
    with pytest.raises(ValueError, match="use LayerWiseFlagLLMReranker"):
        LightWeightFlagLLMReranker(checkpoints["layerwise"], devices="cpu")
    with pytest.raises(ValueError, match="use FlagLLMReranker"):
        LayerWiseFlagLLMReranker(save_decoder(tmp_path / "gemma", "gemma"), devices="cpu")
    with pytest.raises(ValueError, match="use FlagReranker"):
        LayerWiseFlagLLMReranker(save_model(tmp_path / "bert", "bert"), devices="cpu")


def test_other_head_types_and_rope_scalings_are_refused(checkpoints, tmp_path):
    path = edited_copy(checkpoints["layerwise"], tmp_path / "raw", head_type="complex")
    with pytest.raises(ValueError, match="head_type='complex'"):
        Reranker(path, device="cpu")
    config = SimpleNamespace(
        architectures=["LayerWiseMiniCPMForCausalLM"],
        num_attention_heads=4,
        num_hidden_layers=4,
        rope_scaling={"type": "yarn", "factor": 2.0},
    )
    checkpoint = SimpleNamespace(config=config, tokenizer=SimpleNamespace(pad_token_id=0), name="m")
    with pytest.raises(ValueError, match="rope_scaling="):
        layerwise_family(checkpoint)


def test_a_checkpoint_without_head_weights_is_refused(checkpoints, tmp_path):
    from safetensors.torch import load_file, save_file

    path = edited_copy(checkpoints["lightweight"], tmp_path / "headless")
    weights = os.path.join(path, "model.safetensors")
    state = {k: v for k, v in load_file(weights).items() if not k.startswith("lm_head")}
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="no trained reranking head"):
        Reranker(path, device="cpu")


@pytest.mark.parametrize("backend, module", [("onnx", "onnxruntime"), ("openvino", "openvino")])
@pytest.mark.parametrize("kind", list(NAMES))
def test_onnx_and_openvino_refuse_before_loading_weights(
    checkpoints, tmp_path, backend, module, kind
):
    pytest.importorskip(module)
    path = edited_copy(checkpoints[kind], tmp_path / kind)
    os.remove(os.path.join(path, "model.safetensors"))  # the refusal must not need them
    with pytest.raises(ValueError, match=f"backend='{backend}' does not run {NAMES[kind]}s"):
        Reranker(path, backend=backend)
