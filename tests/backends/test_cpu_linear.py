"""Float32 CPU linear layers through oneDNN (crossrank.backends.cpu_linear): same scores, opt-in/out."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from crossrank import Reranker
from crossrank.backends import cpu_linear
from crossrank.backends.cpu_linear import OneDNNLinear, onednn_linear_works, use_onednn_linear
from crossrank.testing import save_model

pytestmark = pytest.mark.skipif(
    not onednn_linear_works(), reason="this torch has no working oneDNN linear op"
)

PAIRS = [
    ["what do pandas eat", "The giant panda eats almost nothing but bamboo shoots and leaves."],
    ["what do pandas eat", "Snakes swallow their prey whole."],
    ["capital of france", "Paris is the capital and largest city of France."],
    ["capital of france", "Bamboo " * 40],
]


@pytest.fixture(scope="module", params=["bert", "xlm-roberta"])
def model_dir(request, tmp_path_factory):
    return save_model(tmp_path_factory.mktemp(request.param), request.param, num_labels=1, seed=5)


def _reference(model_dir):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    batch = tokenizer(
        [q for q, _ in PAIRS], [p for _, p in PAIRS], padding=True, truncation=True,
        max_length=64, return_tensors="pt",
    )  # fmt: skip
    with torch.inference_mode():
        return model(**batch).logits[:, 0].tolist()


def test_onednn_scores_equal_torch_default(model_dir, monkeypatch):
    monkeypatch.setenv("CROSSRANK_CPU_LINEAR", "onednn")
    fast = Reranker(model_dir, device="cpu", max_length=64)
    linears = [m for m in fast.model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(type(m) is OneDNNLinear for m in linears)
    fused = [m for m in fast.model.modules() if type(m).__name__.endswith("Intermediate")]
    assert fused and all(isinstance(m, cpu_linear._FusedGeluIntermediate) for m in fused)
    outputs = [m for m in fast.model.modules() if type(m).__name__.endswith("Output")]
    assert len(outputs) == 2 * len(fused)  # attention output and FFN output of every layer
    assert all(isinstance(m, cpu_linear._FusedAddOutput) for m in outputs)
    monkeypatch.setenv("CROSSRANK_CPU_LINEAR", "mkl")
    plain = Reranker(model_dir, device="cpu", max_length=64)
    assert not any(isinstance(m, OneDNNLinear) for m in plain.model.modules())
    reference = _reference(model_dir)
    assert fast.compute_score(PAIRS) == pytest.approx(reference, abs=1e-5)
    assert plain.compute_score(PAIRS) == pytest.approx(reference, abs=1e-5)
    # the weights and their names are the model's own: a standard state dict
    assert fast.model.state_dict().keys() == plain.model.state_dict().keys()


def test_training_and_other_dtypes_keep_torch_path(model_dir):
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    ids = torch.randint(5, 90, (2, 12))
    model.eval()
    with torch.no_grad():
        before = model(input_ids=ids).logits
    assert use_onednn_linear(model) > 0
    with torch.no_grad():
        after = model(input_ids=ids).logits
    assert torch.allclose(before, after, atol=1e-5)
    # with gradients on, the layers are plain F.linear: training works and gets gradients
    model.train()
    model(input_ids=ids).logits.sum().backward()
    assert all(p.grad is not None for p in model.classifier.parameters())
    # bfloat16 weights take torch's own (oneDNN) bf16 path, not this one
    model.eval().to(torch.bfloat16)
    with torch.no_grad():
        half = model(input_ids=ids).logits.float()
    assert torch.allclose(half, before, atol=0.1)


def test_choice_by_environment_and_cpu(monkeypatch):
    monkeypatch.setenv("CROSSRANK_CPU_LINEAR", "nonsense")
    with pytest.raises(ValueError, match="CROSSRANK_CPU_LINEAR='nonsense': must be one of"):
        cpu_linear.wanted(torch.float32)
    monkeypatch.setenv("CROSSRANK_CPU_LINEAR", "onednn")
    assert cpu_linear.wanted(torch.float32) and not cpu_linear.wanted(torch.bfloat16)
    monkeypatch.setenv("CROSSRANK_CPU_LINEAR", "off")
    assert not cpu_linear.wanted(torch.float32)
    monkeypatch.delenv("CROSSRANK_CPU_LINEAR")
    monkeypatch.setattr(cpu_linear.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(cpu_linear, "_cpu_vendor", lambda: "GenuineIntel")
    assert not cpu_linear.wanted(torch.float32)  # MKL is Intel's own: kept there
    monkeypatch.setattr(cpu_linear, "_cpu_vendor", lambda: "AuthenticAMD")
    assert cpu_linear.wanted(torch.float32)
    monkeypatch.setattr(cpu_linear.platform, "machine", lambda: "aarch64")
    assert not cpu_linear.wanted(torch.float32)


def test_compile_and_bf16_rerankers_are_left_alone(model_dir, monkeypatch):
    monkeypatch.setenv("CROSSRANK_CPU_LINEAR", "onednn")
    half = Reranker(model_dir, device="cpu", max_length=64, dtype="bfloat16")
    assert not any(isinstance(m, OneDNNLinear) for m in half.model.modules())
    compiled = Reranker(model_dir, device="cpu", max_length=64, compile=True)
    assert not any(isinstance(m, OneDNNLinear) for m in compiled.model.modules())


def test_only_the_known_forward_is_fused():
    class OddOutput(torch.nn.Module):  # a BERT-like layout that computes something else
        def __init__(self):
            super().__init__()
            self.dense = torch.nn.Linear(8, 8)
            self.dropout = torch.nn.Dropout(0.1)
            self.LayerNorm = torch.nn.LayerNorm(8)

        def forward(self, hidden_states, input_tensor):
            hidden_states = self.dense(hidden_states)
            return self.LayerNorm(hidden_states - input_tensor)

    module = OddOutput().eval()
    x, residual = torch.randn(2, 3, 8), torch.randn(2, 3, 8)
    with torch.inference_mode():
        before = module(x, residual)
    use_onednn_linear(module)
    assert type(module) is OddOutput and type(module.dense) is OneDNNLinear
    with torch.inference_mode():
        assert torch.allclose(module(x, residual), before, atol=1e-5)
