"""CrossRankRanker as a Haystack component: selection, inputs, copies, async, serialization.

Several tests port the behaviour tests of Haystack's own ``TransformersSimilarityRanker``
(test/components/rankers/test_transformers_similarity.py): to_dict / from_dict with defaults and
custom values, meta fields embedded with the separator, ``score_threshold``, ``top_k``, results
sorted best first, a single document, no documents, and the model loaded by ``warm_up`` (here
also on first use, where Haystack's raised).
"""

from __future__ import annotations

import asyncio
import copy
import threading
from dataclasses import replace

import pytest
from haystack import Document
from haystack.utils import Secret
from haystack_integrations.components.rankers.crossrank import CrossRankRanker
from pydantic import ValidationError

from crossrank.testing import PANDA_DOCS, PANDA_QUERY, assert_same_ranking, expected_ranking

TYPE = "haystack_integrations.components.rankers.crossrank.ranker.CrossRankRanker"


def make_docs():
    return [
        Document(content=text, meta={"title": f"doc {i}", "tags": ["x"]}, score=1.0 - i / 10)
        for i, text in enumerate(PANDA_DOCS)
    ]


def ranking(documents, docs):
    ids = [doc.id for doc in docs]
    return [(ids.index(doc.id), doc.score) for doc in documents]


@pytest.mark.parametrize(
    "selection",
    [
        {"top_k": None},
        {"top_k": 2},
        {"top_k": 0},
        {"top_k": 3, "score_threshold": 0.5},
        {"top_k": None, "score_threshold": 1.0, "min_keep": 2},
        {"top_k": None, "fusion": "rrf"},
        {"top_k": 4, "fusion": "minmax", "fusion_weight": 0.3},
    ],
)
def test_run_equals_reranker_rank(reranker, selection):
    docs = make_docs()
    options = {"top_k": selection["top_k"], "threshold": selection.get("score_threshold")}
    options["min_keep"] = selection.get("min_keep", 0)
    if "fusion" in selection:
        options.update(
            fusion=selection["fusion"], fusion_weight=selection.get("fusion_weight", 0.5)
        )
        options["first_stage_scores"] = [doc.score for doc in docs]
    want = expected_ranking(reranker, PANDA_DOCS, PANDA_QUERY, **options)
    out = CrossRankRanker(reranker=reranker, **selection).run(query=PANDA_QUERY, documents=docs)
    assert_same_ranking(ranking(out["documents"], docs), want)
    if "fusion" in selection:  # the reranker's own score is kept beside the fused one
        own = {h.index: h.score for h in reranker.rank(PANDA_QUERY, PANDA_DOCS, top_k=None)}
        for i, doc in zip([i for i, _ in ranking(out["documents"], docs)], out["documents"]):
            assert doc.meta["rerank_score"] == pytest.approx(own[i], abs=1e-6)


def test_run_overrides_top_k_and_threshold_for_one_call(reranker):
    ranker = CrossRankRanker(reranker=reranker, top_k=1)
    assert len(ranker.run(query=PANDA_QUERY, documents=make_docs())["documents"]) == 1
    out = ranker.run(query=PANDA_QUERY, documents=make_docs(), top_k=4, score_threshold=0.0)
    assert_same_ranking(
        ranking(out["documents"], make_docs()), expected_ranking(reranker, top_k=4, threshold=0.0)
    )
    assert len(ranker.run(query=PANDA_QUERY, documents=make_docs())["documents"]) == 1
    high = ranker.run(query=PANDA_QUERY, documents=make_docs(), top_k=None, score_threshold=1.0)
    assert high["documents"] == []  # sigmoid scores are below 1
    with pytest.raises(ValidationError, match="top_k"):
        ranker.run(query=PANDA_QUERY, documents=make_docs(), top_k=-1)
    with pytest.raises(ValidationError, match="score_threshold"):
        ranker.run(query=PANDA_QUERY, documents=make_docs(), score_threshold=2.0)


def test_results_are_sorted_best_first_and_single_document(reranker):
    out = CrossRankRanker(reranker=reranker, top_k=None).run(
        query=PANDA_QUERY, documents=make_docs()
    )
    scores = [doc.score for doc in out["documents"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == len(PANDA_DOCS)
    single = CrossRankRanker(reranker=reranker).run(query="q", documents=[Document(content="x")])
    assert len(single["documents"]) == 1


def test_no_documents_return_none_and_load_nothing(cross_encoder_dir):
    ranker = CrossRankRanker(cross_encoder_dir)
    assert ranker.run(query="q", documents=[]) == {"documents": []}
    assert asyncio.run(ranker.run_async(query="q", documents=[])) == {"documents": []}
    assert ranker.reranker is None  # nothing was loaded for nothing to rank


def test_warm_up_loads_once_and_run_loads_on_first_use(cross_encoder_dir):
    ranker = CrossRankRanker(cross_encoder_dir, max_length=64)
    assert ranker.reranker is None  # __init__ loads nothing: Haystack calls warm_up
    threads = [threading.Thread(target=ranker.warm_up) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    loaded = ranker.reranker
    assert loaded is not None and loaded.info()["max_length"] == 64
    ranker.warm_up()
    assert ranker.reranker is loaded
    lazy = CrossRankRanker(cross_encoder_dir, max_length=128)
    assert lazy.run(query="q", documents=[Document(content="a")])["documents"][0].score > 0


def test_meta_fields_are_embedded_with_the_separator(reranker):
    docs = [
        Document(content=f"document number {i}", meta={"field": f"value {i}"}) for i in range(3)
    ]
    docs.append(Document(content="no meta"))
    ranker = CrossRankRanker(
        reranker=reranker,
        top_k=None,
        meta_fields_to_embed=["field", "absent"],
        embedding_separator=" | ",
    )
    texts = [f"value {i} | document number {i}" for i in range(3)] + ["no meta"]
    got = ranking(ranker.run(query="test", documents=docs)["documents"], docs)
    assert_same_ranking(got, expected_ranking(reranker, texts, "test", top_k=None))


def test_documents_without_content_are_scored_as_empty_text(reranker):
    docs = [Document(content="pandas eat bamboo"), Document(content=None, meta={"title": "t"})]
    out = CrossRankRanker(reranker=reranker, top_k=None).run(query=PANDA_QUERY, documents=docs)
    want = expected_ranking(reranker, ["pandas eat bamboo", ""], PANDA_QUERY, top_k=None)
    assert_same_ranking(ranking(out["documents"], docs), want)
    titled = CrossRankRanker(reranker=reranker, top_k=None, meta_fields_to_embed=["title"])
    assert_same_ranking(
        ranking(titled.run(query=PANDA_QUERY, documents=docs)["documents"], docs),
        expected_ranking(reranker, ["pandas eat bamboo", "t\n"], PANDA_QUERY, top_k=None),
    )


def test_caller_documents_are_never_modified(reranker):
    docs = make_docs()
    docs[0].meta["lock"] = threading.Lock()  # cannot be deep-copied: shared, the rest copied
    docs[1] = replace(docs[1], embedding=[0.1, 0.2])
    before = [(d.id, d.content, d.score, d.embedding, dict(d.meta)) for d in docs]
    tags_before = copy.deepcopy([d.meta["tags"] for d in docs])
    ranker = CrossRankRanker(reranker=reranker, top_k=None, fusion="minmax")
    out = ranker.run(query=PANDA_QUERY, documents=docs)["documents"]
    for doc in out:
        assert all(doc is not original for original in docs)
        doc.meta["tags"].append("edited")
        if doc.embedding:
            doc.embedding.append(9.9)
    assert [(d.id, d.content, d.score, d.embedding, dict(d.meta)) for d in docs] == before
    assert [d.meta["tags"] for d in docs] == tags_before
    assert all("rerank_score" not in d.meta for d in docs)


def test_run_async_equals_run_and_does_not_block_the_loop(reranker):
    ranker = CrossRankRanker(reranker=reranker, top_k=3)
    want = ranker.run(query=PANDA_QUERY, documents=make_docs())["documents"]

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        results = await asyncio.gather(
            *[ranker.run_async(query=PANDA_QUERY, documents=make_docs()) for _ in range(4)]
        )
        task.cancel()
        return results, ticks

    results, ticks = asyncio.run(main())
    assert ticks > 1  # the loop kept running while the model scored
    for result in results:
        assert [d.id for d in result["documents"]] == [d.id for d in want]
        got = [d.score for d in result["documents"]]
        assert got == pytest.approx([d.score for d in want], abs=1e-5)


def test_bad_input_names_the_argument(reranker):
    ranker = CrossRankRanker(reranker=reranker)
    with pytest.raises(TypeError, match=r"documents\[1\] is str"):
        ranker.run(query="q", documents=[Document(content="a"), "b"])
    with pytest.raises(TypeError, match="documents must be an iterable"):
        ranker.run(query="q", documents="text")
    fused = CrossRankRanker(reranker=reranker, fusion="rrf")
    with pytest.raises(ValueError, match=r"documents\[0\]\.score is None"):
        fused.run(query="q", documents=[Document(content="a")])
    with pytest.raises(ValidationError, match="top_k"):
        CrossRankRanker(reranker=reranker, top_k=-2)
    with pytest.raises(ValidationError, match="fusion"):
        CrossRankRanker(reranker=reranker, fusion="sum")
    with pytest.raises(ValidationError, match="meta_fields_to_embed"):
        CrossRankRanker(reranker=reranker, meta_fields_to_embed="title")
    with pytest.raises(TypeError, match="api_key must be a haystack Secret"):
        CrossRankRanker(base_url="http://127.0.0.1:8080", api_key="plain")
    with pytest.raises(ValueError, match="not both"):
        CrossRankRanker("some/model", reranker=reranker)
    with pytest.raises(ValueError, match="api_key is only used with base_url"):
        CrossRankRanker("some/model", api_key=Secret.from_token("k"))
    with pytest.raises(ValueError, match="batch_size"):
        CrossRankRanker(base_url="http://127.0.0.1:8080", batch_size=8)


def test_to_dict_defaults_and_from_dict_without_parameters():
    data = CrossRankRanker().to_dict()  # loads nothing
    assert data["type"] == TYPE
    params = data["init_parameters"]
    assert params["model"] is None and params["top_k"] == 10 and params["base_url"] is None
    assert params["meta_fields_to_embed"] == [] and params["embedding_separator"] == "\n"
    assert params["api_key"] == {
        "type": "env_var",
        "env_vars": ["CROSSRANK_API_KEY"],
        "strict": False,
    }
    ranker = CrossRankRanker.from_dict({"type": TYPE, "init_parameters": {}})
    assert ranker.to_dict() == data


def test_to_dict_custom_values_round_trip(cross_encoder_dir):
    ranker = CrossRankRanker(
        cross_encoder_dir,
        reranker_kwargs={"cache_size": 8, "dtype": "float32"},
        max_length=96,
        device="cpu",
        top_k=5,
        score_threshold=0.01,
        min_keep=1,
        batch_size=4,
        fusion="rrf",
        fusion_weight=0.2,
        meta_fields_to_embed=["title"],
        embedding_separator=" - ",
    )
    data = ranker.to_dict()
    params = data["init_parameters"]
    assert params["reranker_kwargs"] == {"cache_size": 8} and params["dtype"] == "float32"
    assert (params["top_k"], params["min_keep"], params["fusion"]) == (5, 1, "rrf")
    snapshot = copy.deepcopy(data)
    again = CrossRankRanker.from_dict(data)
    assert data == snapshot  # from_dict leaves its input alone
    assert again.to_dict() == data
    docs = make_docs()
    assert [(d.id, d.score) for d in again.run(query=PANDA_QUERY, documents=docs)["documents"]] == [
        (d.id, d.score) for d in ranker.run(query=PANDA_QUERY, documents=docs)["documents"]
    ]


def test_a_shared_reranker_is_written_as_the_model_that_rebuilds_it(reranker, cross_encoder_dir):
    params = CrossRankRanker(reranker=reranker).to_dict()["init_parameters"]
    assert params["model"] == reranker.info()["model"] and params["max_length"] == 128
    assert "reranker" not in params
    rebuilt = CrossRankRanker.from_dict({"type": TYPE, "init_parameters": params})
    docs = make_docs()
    got = ranking(rebuilt.run(query=PANDA_QUERY, documents=docs, top_k=None)["documents"], docs)
    assert_same_ranking(got, expected_ranking(reranker, top_k=None))


def test_api_key_is_a_secret_never_written_out(monkeypatch):
    url = "http://127.0.0.1:8080"
    from_env = CrossRankRanker(base_url=url, api_key=Secret.from_env_var("MY_KEY", strict=False))
    assert from_env.to_dict()["init_parameters"]["api_key"]["env_vars"] == ["MY_KEY"]
    token = CrossRankRanker(base_url=url, api_key=Secret.from_token("s3cret"))
    with pytest.raises(ValueError):  # Haystack refuses to serialize a token secret
        token.to_dict()
    assert "s3cret" not in repr(token.api_key)
    no_key = CrossRankRanker(base_url=url, api_key=None)
    assert CrossRankRanker.from_dict(no_key.to_dict()).api_key is None


def test_calibration_scores_and_thresholds_on_the_calibrated_scale(cross_encoder_dir, tmp_path):
    from crossrank import Reranker
    from crossrank.calibration import Calibration

    platt = Calibration("platt", a=0.5, b=-1.0, source="test")
    path = str(tmp_path / "calibration.json")
    platt.save(path)
    ranker = CrossRankRanker(
        cross_encoder_dir, max_length=128, top_k=None, reranker_kwargs={"calibration": path}
    )
    assert ranker.to_dict()["init_parameters"]["reranker_kwargs"] == {"calibration": path}
    docs = make_docs()
    out = ranker.run(query=PANDA_QUERY, documents=docs)["documents"]
    logits = Reranker(cross_encoder_dir, max_length=128).compute_score(
        [[PANDA_QUERY, text] for text in PANDA_DOCS]
    )
    probabilities = platt.probabilities(logits)
    want = sorted(range(len(docs)), key=lambda i: -probabilities[i])
    assert [doc.id for doc in out] == [docs[i].id for i in want]
    assert [doc.score for doc in out] == pytest.approx([probabilities[i] for i in want], abs=1e-5)
    cut = sorted(probabilities)[len(docs) // 2]
    kept = ranker.run(query=PANDA_QUERY, documents=docs, score_threshold=float(cut))["documents"]
    assert len(kept) == sum(p >= cut for p in probabilities)
