"""The score cache: repeated pairs are not scored again, keys are exact, LRU, thread-safe."""

from __future__ import annotations

import random
import threading

import pytest

from crossrank import Reranker
from crossrank.cache import ScoreCache
from crossrank.testing import SCORING_PAIRS as PAIRS

LIST_PAIRS = [list(p) for p in PAIRS]


class scored_pairs:  # noqa: N801 - reads like the list it replaces: len(seen)
    """How many pairs reached the model since this was made (``Reranker.stats()``)."""

    def __init__(self, reranker, monkeypatch=None):
        self.reranker = reranker
        self.start = reranker.stats()["pairs_scored"]

    def __len__(self) -> int:
        return self.reranker.stats()["pairs_scored"] - self.start


def test_repeated_pairs_are_not_scored_again(bert_dir, monkeypatch):
    reranker = Reranker(bert_dir, max_length=48, cache_size=100)
    seen = scored_pairs(reranker, monkeypatch)
    first = reranker.compute_score(LIST_PAIRS)
    assert len(seen) == len(PAIRS)
    assert reranker.compute_score(LIST_PAIRS) == first
    assert reranker.compute_score(LIST_PAIRS, normalize=True) == pytest.approx(
        Reranker(bert_dir, max_length=48).compute_score(LIST_PAIRS, normalize=True), abs=1e-6
    )
    query, passage = PAIRS[0]
    hits = reranker.rank(query, [passage], normalize=False)
    assert hits[0].score == first[0]
    assert len(seen) == len(PAIRS)  # nothing new reached the model


def test_cached_scores_equal_uncached_scores(bert_dir, monkeypatch):
    plain = Reranker(bert_dir, max_length=48).compute_score(LIST_PAIRS)
    reranker = Reranker(bert_dir, max_length=48, cache_size=100)
    seen = scored_pairs(reranker, monkeypatch)
    reranker.compute_score(LIST_PAIRS[:3])
    mixed = reranker.compute_score(LIST_PAIRS)  # three hits, the rest scored now
    assert len(seen) == len(PAIRS)
    assert mixed == pytest.approx(plain, abs=1e-5)
    assert max(plain) - min(plain) > 1e-3


def test_duplicates_within_one_call_are_scored_once(bert_dir, monkeypatch):
    reranker = Reranker(bert_dir, max_length=48, cache_size=100)
    seen = scored_pairs(reranker, monkeypatch)
    scores = reranker.compute_score([LIST_PAIRS[0], LIST_PAIRS[1], LIST_PAIRS[0]])
    assert len(seen) == 2
    assert scores[0] == scores[2]


def test_key_is_the_exact_texts(bert_dir, monkeypatch):
    reranker = Reranker(bert_dir, max_length=48, cache_size=100)
    seen = scored_pairs(reranker, monkeypatch)
    query, passage = PAIRS[0]
    reranker.compute_score([query, passage])
    for variant in ([query + " ", passage], [query, passage.upper()], [passage, query]):
        reranker.compute_score(variant)
    assert len(seen) == 4


def test_identity_holds_model_and_every_setting(model_dirs):
    base = Reranker(model_dirs["bert"], max_length=48, cache_size=10).settings.score_key()
    assert base == Reranker(model_dirs["bert"], max_length=48, cache_size=10).settings.score_key()
    others = [
        Reranker(model_dirs["bert"], max_length=32, cache_size=10),
        Reranker(model_dirs["bert-2logit"], max_length=48, cache_size=10),
        Reranker(model_dirs["bert"], max_length=48, query_max_length=8, cache_size=10),
        Reranker(model_dirs["bert"], max_length=48, long_documents="maxp", stride=8, cache_size=10),
    ]
    for other in others:
        assert other.settings.score_key() != base


def test_same_texts_under_another_identity_are_scored_again():
    calls = []

    def score(todo):
        calls.append(list(todo))
        return [float(len(q) + len(p)) for q, p in todo]

    cache = ScoreCache(max_size=10)
    pairs = [("q", "p1"), ("q", "p2")]
    assert cache.scores(("model-a", 512), pairs, score) == [3.0, 3.0]
    assert cache.scores(("model-a", 256), pairs, score) == [3.0, 3.0]
    assert cache.scores(("model-a", 512), pairs, score) == [3.0, 3.0]
    assert len(calls) == 2
    assert (cache.hits, cache.misses) == (2, 4)


def test_least_recently_used_entry_is_evicted_first():
    calls = []

    def score(todo):
        calls.extend(todo)
        return [float(int(p)) for _, p in todo]

    cache = ScoreCache(max_size=2)
    cache.scores("m", [("q", "1"), ("q", "2")], score)
    cache.scores("m", [("q", "1")], score)  # touch 1: 2 is now the oldest
    cache.scores("m", [("q", "3")], score)  # evicts 2
    assert len(cache) == 2
    calls.clear()
    assert cache.scores("m", [("q", "1"), ("q", "3"), ("q", "2")], score) == [1.0, 3.0, 2.0]
    assert calls == [("q", "2")]


def test_reranker_cache_stays_within_its_size(bert_dir):
    reranker = Reranker(bert_dir, max_length=48, cache_size=3)
    reranker.compute_score(LIST_PAIRS)
    assert reranker.stats()["cache_entries"] == 3


def test_cache_is_thread_safe():
    cache = ScoreCache(max_size=40)
    texts = [f"passage {i}" for i in range(100)]
    errors = []

    def score(todo):
        return [float(hash((q, p)) % 1000) for q, p in todo]

    def worker(seed):
        rng = random.Random(seed)
        for _ in range(200):
            pairs = [("query", rng.choice(texts)) for _ in range(rng.randint(1, 8))]
            got = cache.scores("m", pairs, score)
            if got != score(pairs):
                errors.append((pairs, got))

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) <= 40


def test_reranker_with_cache_across_threads(bert_dir):
    expected = Reranker(bert_dir, max_length=48).compute_score(LIST_PAIRS)
    reranker = Reranker(bert_dir, max_length=48, cache_size=4)  # small: evictions while racing
    results, errors = [], []

    def worker(seed):
        order = list(range(len(LIST_PAIRS)))
        random.Random(seed).shuffle(order)
        try:
            for _ in range(3):
                got = reranker.compute_score([LIST_PAIRS[i] for i in order])
                results.append(dict(zip(order, got)))
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for by_index in results:
        assert [by_index[i] for i in range(len(LIST_PAIRS))] == pytest.approx(expected, abs=1e-5)


def test_cache_size_zero_means_off(bert_dir, monkeypatch):
    reranker = Reranker(bert_dir, max_length=48)
    assert reranker.stats()["cache_entries"] == 0
    seen = scored_pairs(reranker, monkeypatch)
    reranker.compute_score(LIST_PAIRS)
    reranker.compute_score(LIST_PAIRS)
    assert len(seen) == 2 * len(PAIRS)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "100", None])
def test_bad_cache_size_is_rejected(bert_dir, bad):
    with pytest.raises(ValueError, match="cache_size"):
        Reranker(bert_dir, cache_size=bad)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_bad_max_size_is_rejected(bad):
    with pytest.raises(ValueError, match="max_size"):
        ScoreCache(bad)


def test_empty_input_with_cache(bert_dir):
    reranker = Reranker(bert_dir, max_length=48, cache_size=10)
    assert reranker.compute_score([]) == []
    assert reranker.rank("query", []) == []
    assert reranker.stats()["cache_entries"] == 0
