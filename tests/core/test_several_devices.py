"""Several devices in one process: one replica per device, batches spread, identical results."""

from __future__ import annotations

import pytest
import torch

from crossrank import Reranker
from crossrank.testing import SCORING_PAIRS as PAIRS

LIST_PAIRS = [list(p) for p in PAIRS] * 8
DOCS = [p for _, p in PAIRS]


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_two_cpu_replicas_equal_one_device(bert_dir, restore_threads):
    single = Reranker(bert_dir, device="cpu", max_length=48, batch_size=2)
    pair = Reranker(bert_dir, device=["cpu", "cpu"], max_length=48, batch_size=2)
    assert pair.info()["devices"] == ["cpu", "cpu"]
    expected = single.compute_score(LIST_PAIRS)
    # distinct pairs, so the pipeline has many batches to spread
    pairs = [[q, f"{p} {i}"] for i, (q, p) in enumerate(LIST_PAIRS)]
    assert pair.compute_score(pairs) == pytest.approx(single.compute_score(pairs), abs=1e-6)
    assert pair.compute_score(LIST_PAIRS) == pytest.approx(expected, abs=1e-6)
    per_device = pair.stats()["forward_passes_per_device"]
    assert len(per_device) == 2 and min(per_device) > 0, per_device  # both replicas worked
    query = PAIRS[0][0]
    assert [h.index for h in pair.rank(query, DOCS)] == [h.index for h in single.rank(query, DOCS)]
    many = pair.rank_many([query, PAIRS[2][0]], [DOCS, DOCS[:3]], top_k=2)
    assert [[h.index for h in r] for r in many] == [
        [h.index for h in single.rank(query, DOCS, top_k=2)],
        [h.index for h in single.rank(PAIRS[2][0], DOCS[:3], top_k=2)],
    ]


def test_cpu_replicas_share_the_threads(bert_dir, restore_threads):
    torch.set_num_threads(2)
    with pytest.warns(UserWarning, match=r"torch.set_num_threads\(1\)"):
        Reranker(bert_dir, device=["cpu", "cpu"], max_length=48)
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize(
    "device, message",
    [
        ([], "names no device"),
        (["cpu", "warp"], "not a device crossrank knows"),
    ],
)
def test_bad_device_lists_are_named(bert_dir, device, message):
    with pytest.raises((TypeError, ValueError), match=message):
        Reranker(bert_dir, device=device)


def test_onnx_takes_one_device(bert_dir):
    pytest.importorskip("onnxruntime")
    with pytest.raises(ValueError, match="backend='onnx' takes one device"):
        Reranker(bert_dir, device=["cpu", "cpu"], backend="onnx")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_two_gpus_equal_one(bert_dir):
    single = Reranker(bert_dir, device="cuda:0", max_length=48, use_fp16=False)
    pair = Reranker(bert_dir, device=["cuda:0", "cuda:1"], max_length=48, use_fp16=False)
    pairs = [[q, f"{p} {i}"] for i, (q, p) in enumerate(LIST_PAIRS)]
    assert pair.compute_score(pairs) == pytest.approx(single.compute_score(pairs), abs=1e-5)
