"""crossrank.scorer.Scorer: Reranker and RemoteReranker answer the same calls the same way."""

from __future__ import annotations

import asyncio
import inspect
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from crossrank import Reranker
from crossrank.client.remote import RemoteReranker
from crossrank.scorer import Scorer

QUERY = "what does a panda eat"
DOCS = [
    "Paris is the capital city of France.",
    "The giant panda eats bamboo.",
    "A python is a snake.",
    "Bears of china eat bamboo.",
]
OFFLINE = "http://127.0.0.1:9"  # nothing listens: a call that reaches the network fails


@pytest.fixture(scope="module")
def reranker(bert_dir):
    return Reranker(bert_dir, max_length=48)


@pytest.fixture(scope="module")
def server_url(reranker):
    pytest.importorskip("fastapi", reason="needs a crossrank server: crossrank[serve]")
    pytest.importorskip("uvicorn", reason="needs a crossrank server: crossrank[serve]")
    from crossrank.serve import ServeSettings, create_app
    from crossrank.testing import serving

    with serving(create_app(reranker, ServeSettings(api_key="k")), healthy=True) as url:
        yield url


class CountingExecutor(ThreadPoolExecutor):
    """The loop's default executor, counting what runs in it and where."""

    def __init__(self):
        super().__init__(max_workers=2)
        self.threads = []

    def submit(self, fn, *args, **kwargs):
        def run():
            self.threads.append(threading.get_ident())
            return fn(*args, **kwargs)

        return super().submit(run)


def test_both_scorers_are_scorers_and_nothing_else_is(reranker):
    assert isinstance(reranker, Scorer) and isinstance(RemoteReranker(OFFLINE), Scorer)
    assert not isinstance("BAAI/bge-reranker-base", Scorer) and not isinstance(None, Scorer)


def test_rank_has_one_signature_for_both():
    def parameters(method):
        return [(p.name, p.default) for p in inspect.signature(method).parameters.values()]

    assert parameters(Reranker.rank) == parameters(Scorer.rank) == parameters(RemoteReranker.rank)
    assert parameters(RemoteReranker.arank) == parameters(Scorer.rank)


def test_local_arank_is_rank_off_the_event_loop(reranker):
    executor = CountingExecutor()
    options = {"top_k": 3, "threshold": 0.1, "min_keep": 1, "first_stage_scores": [1, 4, 2, 3]}

    async def main():
        asyncio.get_running_loop().set_default_executor(executor)
        return threading.get_ident(), await reranker.arank(QUERY, iter(DOCS), **options)

    loop_thread, hits = asyncio.run(main())
    assert hits == reranker.rank(QUERY, DOCS, **options)
    assert executor.threads and loop_thread not in executor.threads  # scored in a worker
    positional = asyncio.run(reranker.arank(QUERY, DOCS, 2, None, False))
    assert positional == reranker.rank(QUERY, DOCS, top_k=2, normalize=False)


def test_bad_arguments_fail_alike_before_any_request(reranker):
    remote = RemoteReranker(OFFLINE)
    for kwargs in ({"batch_size": 0}, {"normalize": "yes"}, {"fusion": "max"}, {"top_k": -1}):
        with pytest.raises(Exception) as local:
            reranker.rank(QUERY, DOCS, **kwargs)
        for call in (remote.rank, lambda *a, **k: asyncio.run(remote.arank(*a, **k))):
            with pytest.raises(type(local.value)) as got:
                call(QUERY, DOCS, **kwargs)
            assert str(got.value) == str(local.value)
    with pytest.raises(TypeError, match="no_such_option"):
        asyncio.run(remote.arank(QUERY, DOCS, no_such_option=1))
    with pytest.raises(TypeError):
        remote.compute_score("not pairs")


def close(got, want):
    assert [(h.index, h.text) for h in got] == [(h.index, h.text) for h in want]
    assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((), {"normalize": False}),
        ((), {"normalize": False, "threshold": 0.0, "top_k": 2}),
        ((2, None, True, 4), {}),  # positional, in the one order: top_k, threshold, ...
        ((), {"batch_size": 2, "threshold": 0.5, "min_keep": 1}),
    ],
)
def test_remote_rank_equals_local(server_url, reranker, args, kwargs):
    remote = RemoteReranker(server_url, api_key="k")
    want = reranker.rank(QUERY, DOCS, *args, **kwargs)
    close(remote.rank(QUERY, DOCS, *args, **kwargs), want)
    close(asyncio.run(remote.arank(QUERY, DOCS, *args, **kwargs)), want)


def test_remote_compute_score_equals_local(server_url, reranker):
    remote = RemoteReranker(server_url, api_key="k")
    pairs = [[QUERY, DOCS[1]], ["paris", DOCS[0]], [QUERY, DOCS[2]], ["paris", DOCS[3]]]
    for normalize in (False, True):
        want = reranker.compute_score(pairs, normalize=normalize)
        assert remote.compute_score(pairs, normalize=normalize) == pytest.approx(want, abs=1e-5)
    assert remote.compute_score(pairs[0]) == pytest.approx(
        reranker.compute_score(pairs[0]), abs=1e-5
    )
    assert remote.compute_score([]) == []
