"""Device choice, dtype policy, the fp32 fallback and out-of-memory retries."""

from __future__ import annotations

import threading
import warnings
import weakref

import pytest
import torch

import crossrank.devices as devices
from crossrank import CrossrankWarning, Reranker
from crossrank.devices import choose_dtype, is_out_of_memory, resolve_device
from crossrank.testing import SCORING_PAIRS as PAIRS
from crossrank.testing.checks import fail_forwards_above

PAIR_LISTS = [list(p) for p in PAIRS]


def test_auto_and_cpu_resolve_here():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_says_what_to_do():
    with pytest.raises(ValueError, match="CUDA is not available.*device='cpu'"):
        resolve_device("cuda")


def test_dtype_policy():
    cpu, cuda, mps = torch.device("cpu"), torch.device("cuda"), torch.device("mps")
    assert choose_dtype(cuda, None) == torch.float16
    assert choose_dtype(mps, True) == torch.float16
    assert choose_dtype(cuda, False) == torch.float32
    assert choose_dtype(cpu, None) == torch.float32
    assert choose_dtype(cpu, True, dtype="bfloat16") == torch.bfloat16
    assert choose_dtype(cuda, True, dtype="float32") == torch.float32


def test_use_fp16_on_cpu_is_ignored_with_one_note(bert_dir):
    with pytest.warns(CrossrankWarning, match="ignored on CPU"):
        reranker = Reranker(bert_dir, device="cpu", use_fp16=True, max_length=48)
    assert reranker.dtype == torch.float32
    assert next(reranker.model.parameters()).dtype == torch.float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Reranker(bert_dir, device="cpu", use_fp16=True, max_length=48)  # no second note


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_casts_whole_model_consistently(bert_dir, dtype):
    fp32 = Reranker(bert_dir, device="cpu", max_length=48).compute_score(PAIR_LISTS)
    reranker = Reranker(bert_dir, device="cpu", dtype=dtype, max_length=48)
    assert {p.dtype for p in reranker.model.parameters()} == {dtype}
    assert {b.dtype for b in reranker.model.buffers() if b.is_floating_point()} <= {dtype}
    half = reranker.compute_score(PAIR_LISTS)
    assert all(isinstance(s, float) for s in half)
    assert half == pytest.approx(fp32, abs=0.05)
    assert reranker.dtype == dtype  # no fallback was needed


def test_failing_half_forward_falls_back_to_fp32_once(bert_dir, monkeypatch):
    expected = Reranker(bert_dir, device="cpu", max_length=48).compute_score(PAIR_LISTS)
    reranker = Reranker(bert_dir, device="cpu", dtype="float16", max_length=48)
    calls = {"failed": 0}

    def forward(*args, **kwargs):
        calls["failed"] += 1
        raise RuntimeError(
            "'mps.add' op requires the same element type for all operands and results "
            "... (tensor<1x7x1xf16>, tensor<1xf32>)"
        )

    monkeypatch.setattr(reranker.model, "forward", forward)  # the half model's forward fails
    with pytest.warns(CrossrankWarning, match="switched this model to float32"):
        got = reranker.compute_score(PAIR_LISTS)
    assert got == pytest.approx(expected, abs=1e-5)
    assert reranker.dtype == torch.float32 and calls["failed"] == 1
    assert reranker.compute_score(PAIR_LISTS) == pytest.approx(expected, abs=1e-5)
    assert calls["failed"] == 1


def test_fp32_errors_are_not_swallowed(bert_dir, monkeypatch):
    reranker = Reranker(bert_dir, device="cpu", max_length=48)

    def forward(*args, **kwargs):
        raise RuntimeError("something else broke")

    monkeypatch.setattr(reranker.model, "forward", forward)
    with pytest.raises(RuntimeError, match="something else broke"):
        reranker.compute_score(PAIR_LISTS)


def test_out_of_memory_splits_the_batch_and_still_scores(bert_dir, monkeypatch):
    reranker = Reranker(bert_dir, device="cpu", max_length=48)
    expected = reranker.compute_score(PAIR_LISTS * 4, batch_size=1)
    sizes = fail_forwards_above(reranker.model, 3, monkeypatch)
    with pytest.warns(CrossrankWarning, match="out of memory"):
        got = reranker.compute_score(PAIR_LISTS * 4, batch_size=24)
    assert got == pytest.approx(expected, abs=1e-5)
    assert sizes[0] > 3 and max(s for s in sizes[1:] if s <= 3) <= 3


def test_out_of_memory_retry_runs_after_the_failed_batch_is_freed(bert_dir, monkeypatch):
    """The retry must not run while the failed forward's activations are still referenced (by
    the exception's traceback): on a GPU that memory is what made the batch fail."""
    reranker = Reranker(bert_dir, device="cpu", max_length=48)
    real_forward = reranker.model.forward
    failed, still_held = [], []

    def forward(*args, input_ids=None, **kwargs):
        still_held.append(sum(ref() is not None for ref in failed))
        if input_ids.shape[0] > 2:
            activations = torch.ones(input_ids.shape[0], 4096)  # what the failed forward held
            failed.append(weakref.ref(activations))
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(*args, input_ids=input_ids, **kwargs)

    monkeypatch.setattr(reranker.model, "forward", forward)
    with pytest.warns(CrossrankWarning, match="out of memory"):
        reranker.compute_score(PAIR_LISTS * 4, batch_size=16)
    assert len(failed) >= 2 and still_held == [0] * len(still_held)


def test_is_out_of_memory():
    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_one_instance_is_safe_across_threads(bert_dir):
    reranker = Reranker(bert_dir, device="cpu", max_length=48)
    queries = ["what does a panda eat", "capital of france", "python snake", "rain cloud"]
    docs = [p[1] for p in PAIRS]
    expected = {q: reranker.rank(q, docs) for q in queries}
    results, errors = {}, []

    def work(q):
        try:
            for _ in range(5):
                results.setdefault(q, []).append(reranker.rank(q, docs))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(q,)) for q in queries]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for q in queries:
        for got in results[q]:
            assert [h.index for h in got] == [h.index for h in expected[q]]
            assert [h.score for h in got] == pytest.approx([h.score for h in expected[q]], abs=1e-5)


@pytest.mark.parametrize(
    "native, advice",
    [(True, "bfloat16 natively.*twice the speed"), (False, "force half precision")],
)
def test_fp16_note_on_cpu_says_whether_bfloat16_is_native(monkeypatch, native, advice):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    with pytest.warns(CrossrankWarning, match=advice):
        assert choose_dtype(torch.device("cpu"), True) == torch.float32


def test_bf16_probe_reads_cpu_capabilities_and_never_raises(monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True}, raising=False)
    assert devices.cpu_has_native_bf16() is True
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True}, raising=False)
    assert devices.cpu_has_native_bf16() is False

    def broken():
        raise RuntimeError("cpuinfo failed")

    monkeypatch.setattr(torch.cpu, "get_capabilities", broken, raising=False)
    assert devices.cpu_has_native_bf16() is False
