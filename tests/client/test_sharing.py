"""The wrappers' one construction rule (crossrank.sources), safe copies (crossrank.integration),
the remote client's errors (crossrank.client.remote), and the old crossrank.sharing names.

The remote client's agreement with a real ``crossrank serve`` is tested in both integration suites;
here a stdlib HTTP server plays a broken or busy service, so every error path runs over real HTTP.
"""

from __future__ import annotations

import asyncio
import io
import pathlib
import socket
import threading
import types

import pytest

import crossrank.client.remote
import crossrank.integration
import crossrank.reranker
import crossrank.sharing
import crossrank.sources
from crossrank import Reranker
from crossrank.client.remote import RemoteReranker, RemoteRerankError
from crossrank.integration import copy_shareable
from crossrank.sharing import dtype_name
from crossrank.sources import check_sources, resolve_reranker, split_reranker_kwargs
from crossrank.testing import stub_service

pytest.importorskip("httpx", reason="the remote client needs httpx")

QUERY = "what is panda?"
DOCS = ["hi", "the giant panda is a bear", "paris is in france"]


@pytest.fixture(scope="module")
def reranker(bert_dir):
    return Reranker(bert_dir, device="cpu", max_length=128)


# ---------------------------------------------------------------------- the construction rule


def test_shared_reranker_is_returned_as_is(reranker):
    assert resolve_reranker(reranker=reranker) is reranker


def test_model_is_loaded_with_load_options_and_reranker_kwargs(bert_dir, reranker):
    built = resolve_reranker(
        bert_dir,
        reranker_kwargs={"cache_size": 8, "long_documents": "maxp", "stride": 32},
        device="cpu",
        max_length=64,
        use_fp16=None,  # None = not given: the Reranker's default
    )
    assert isinstance(built, Reranker) and built is not reranker
    assert built.max_length == 64 and str(built.device) == "cpu"
    assert built.long_documents == "maxp" and built.stride == 32
    assert built._cache is not None  # cache_size reached the Reranker
    pairs = [[QUERY, doc] for doc in DOCS]
    assert built.compute_score(pairs) == pytest.approx(
        Reranker(bert_dir, device="cpu", max_length=64).compute_score(pairs), abs=1e-5
    )


def test_default_model_when_nothing_is_given(monkeypatch):
    seen = []

    class Recording(Reranker):
        def __init__(self, model, **kwargs):  # records what would be loaded, loads nothing
            seen.append((model, kwargs))

    monkeypatch.setattr(crossrank.reranker, "Reranker", Recording)
    resolve_reranker(reranker_kwargs={"backend": "torch"}, max_length=None, dtype="bfloat16")
    assert seen == [(crossrank.DEFAULT_MODEL, {"dtype": "bfloat16", "backend": "torch"})]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            {"model": "m", "reranker": "R"},
            ValueError,
            r"either model= .* or reranker= .*, not both",
        ),
        (
            {"reranker": "R", "device": "cpu", "dtype": "float32"},
            ValueError,
            "device, dtype configure loading a model .* reranker=",
        ),
        (
            {"reranker": "R", "reranker_kwargs": {"cache_size": 4}},
            ValueError,
            "reranker_kwargs configure loading",
        ),
        ({"reranker": "R", "base_url": "http://x"}, ValueError, "either reranker= .* or base_url="),
        (
            {"reranker": "not a reranker"},
            TypeError,
            "reranker must be a crossrank.Reranker, got str",
        ),
        (
            {"reranker_kwargs": ["cache_size", 4]},
            TypeError,
            "reranker_kwargs must be a dict .* got list",
        ),
        (
            {"reranker_kwargs": {"cache": 4}},
            ValueError,
            r"reranker_kwargs\['cache'\] is not a Reranker option; options: .*cache_size",
        ),
        (
            {"reranker_kwargs": {"model": "m"}},
            ValueError,
            r"reranker_kwargs\['model'\]: pass the model as model=",
        ),
        ({"base_url": "127.0.0.1:8080"}, ValueError, "base_url must be an http:// or https:// URL"),
        (
            {"base_url": "http://x", "max_length": 128},
            ValueError,
            "max_length configure loading .* base_url=",
        ),
        ({"api_key": "k"}, ValueError, "api_key is only used with base_url="),
    ],
)
def test_bad_combinations_name_the_arguments(reranker, kwargs, error, message):
    if kwargs.get("reranker") == "R":
        kwargs = {**kwargs, "reranker": reranker}
    load = {name: kwargs.pop(name) for name in ("device", "dtype", "max_length") if name in kwargs}
    with pytest.raises(error, match=message):
        check_sources(**kwargs, load_options=load)
    with pytest.raises(error, match=message):  # resolve_reranker applies the same rule first
        resolve_reranker(**kwargs, **load)


def test_load_options_in_reranker_kwargs_are_accepted_once(bert_dir):
    rest, merged = split_reranker_kwargs({"dtype": "bfloat16", "cache_size": 8}, {"device": "cpu"})
    assert rest == {"cache_size": 8} and merged == {"device": "cpu", "dtype": "bfloat16"}
    built = resolve_reranker(bert_dir, reranker_kwargs={"dtype": "bfloat16", "max_length": 64})
    assert dtype_name(built) == "bfloat16" and built.max_length == 64
    # the same value twice is harmless; two different values are an error naming both
    assert split_reranker_kwargs({"device": "cpu"}, {"device": "cpu"})[1] == {"device": "cpu"}
    with pytest.raises(
        ValueError,
        match=r"device is given twice, as device='cuda' and as reranker_kwargs\['device'\]='cpu'",
    ):
        resolve_reranker(bert_dir, reranker_kwargs={"device": "cpu"}, device="cuda")


def test_base_url_gives_a_remote_reranker_and_loads_nothing(monkeypatch):
    monkeypatch.setattr(crossrank.reranker, "Reranker", None)  # any load attempt would fail
    remote = resolve_reranker(
        "served-model", base_url="http://127.0.0.1:9/", api_key="k", timeout=5
    )
    assert isinstance(remote, RemoteReranker)
    assert remote.url == "http://127.0.0.1:9/v1/rerank" and remote.model_name == "served-model"
    assert remote.timeout == 5.0


def test_the_old_sharing_names_are_the_new_ones():
    for module, names in (
        (crossrank.sources, ("check_sources", "resolve_reranker", "split_reranker_kwargs")),
        (crossrank.integration, ("copy_shareable", "rank_options")),
        (crossrank.client.remote, ("RemoteReranker", "RemoteRerankError", "API_KEY_ENV")),
    ):
        for name in names:
            assert getattr(crossrank.sharing, name) is getattr(module, name)


def test_dtype_name_reports_the_precision_in_use(bert_dir, reranker):
    assert dtype_name(reranker) == "float32"
    assert (
        dtype_name(Reranker(bert_dir, device="cpu", max_length=128, dtype="bfloat16")) == "bfloat16"
    )


# ---------------------------------------------------------------------- copies


def test_copy_shareable_copies_what_it_can_and_shares_the_rest(tmp_path):
    lock = threading.Lock()
    with open(tmp_path / "f.txt", "w") as handle:
        value = {
            "tags": ["a"],
            "nested": {"lock": lock, "pos": [1]},
            "file": handle,
            "t": (lock, [2]),
        }
        with pytest.raises(TypeError):  # what the wrappers did before: deepcopy fails
            __import__("copy").deepcopy(value)
        copied = copy_shareable(value)
    assert copied == value
    assert copied["nested"]["lock"] is lock and copied["file"] is handle and copied["t"][0] is lock
    assert (
        copied["tags"] is not value["tags"]
        and copied["nested"]["pos"] is not value["nested"]["pos"]
    )
    assert copied["t"][1] is not value["t"][1]
    copied["tags"].append("b")
    copied["nested"]["pos"].append(2)
    assert value["tags"] == ["a"] and value["nested"]["pos"] == [1]


def test_copy_shareable_is_a_plain_deepcopy_when_possible():
    value = {"a": [1, {"b": 2}]}
    copied = copy_shareable(value)
    assert copied == value and copied["a"][1] is not value["a"][1]
    assert isinstance(copy_shareable(io.StringIO("x")), io.StringIO)  # deep-copyable object


# ---------------------------------------------------------------------- remote: argument checks


@pytest.mark.parametrize(
    "args, kwargs",
    [
        (("", DOCS), {}),
        ((None, DOCS), {}),
        ((QUERY, "text"), {}),
        ((QUERY, [DOCS[0], None]), {}),
        ((QUERY, DOCS), {"top_k": -1}),
        ((QUERY, DOCS), {"top_k": 1.5}),
        ((QUERY, DOCS), {"threshold": "0.5"}),
        ((QUERY, DOCS), {"threshold": float("nan")}),
        ((QUERY, DOCS), {"min_keep": -2}),
    ],
)
def test_remote_rejects_what_the_core_rejects_before_any_request(reranker, args, kwargs):
    with pytest.raises(Exception) as local:
        reranker.rank(*args, **kwargs)
    remote = RemoteReranker("http://127.0.0.1:9")  # nothing listens there: no request may be sent
    with pytest.raises(type(local.value)) as got:
        remote.rank(*args, **kwargs)
    assert str(got.value) == str(local.value)
    with pytest.raises(type(local.value)):
        asyncio.run(remote.arank(*args, **kwargs))


def test_remote_needs_no_request_for_nothing_to_rank():
    remote = RemoteReranker("http://127.0.0.1:9")
    assert remote.rank(QUERY, []) == [] and remote.rank(QUERY, DOCS, top_k=0) == []
    assert asyncio.run(remote.arank(QUERY, [])) == []


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), "5"])
def test_remote_timeout_must_be_positive_seconds(timeout):
    with pytest.raises((TypeError, ValueError), match="timeout must be"):
        RemoteReranker("http://127.0.0.1:9", timeout=timeout)


# ---------------------------------------------------------------------- remote: a broken service


def both_paths(remote, *args, **kwargs):
    """The sync and the async call's exceptions, for the same arguments."""
    errors = []
    for call in (
        lambda: remote.rank(*args, **kwargs),
        lambda: asyncio.run(remote.arank(*args, **kwargs)),
    ):
        with pytest.raises(RemoteRerankError) as info:
            call()
        errors.append(info.value)
    return errors


def test_request_is_the_cohere_v1_shape_and_results_map_back():
    answer = {
        "results": [{"index": 2, "relevance_score": 0.75}, {"index": 0, "relevance_score": 0.25}]
    }
    with stub_service(status=200, body=answer) as (url, seen):
        remote = RemoteReranker(url + "/", api_key="secret", model="m")
        hits = remote.rank(QUERY, DOCS, top_k=2, threshold=0.1)
        assert asyncio.run(remote.arank(QUERY, DOCS, top_k=2, threshold=0.1)) == hits
    assert [(h.index, h.score, h.text) for h in hits] == [(2, 0.75, DOCS[2]), (0, 0.25, DOCS[0])]
    path, headers, body = seen[0]
    assert path == "/v1/rerank" and headers["Authorization"] == "Bearer secret"
    assert body == {
        "query": QUERY,
        "documents": DOCS,
        "return_documents": False,
        "model": "m",
        "top_n": 2,
        "score_threshold": 0.1,
    }
    assert seen[1][2] == body


def test_api_key_defaults_to_the_environment(monkeypatch):
    monkeypatch.setenv("CROSSRANK_API_KEY", "from-env")
    with stub_service(status=200, body={"results": []}) as (url, seen):
        RemoteReranker(url).rank(QUERY, DOCS)
    assert seen[0][1]["Authorization"] == "Bearer from-env"


def test_busy_service_429_names_the_url_and_retry_after():
    with stub_service(status=429, body={"message": "queue full"}, headers={"Retry-After": "3"}) as (
        url,
        _,
    ):
        for error in both_paths(RemoteReranker(url), QUERY, DOCS):
            assert error.status_code == 429 and error.url == f"{url}/v1/rerank"
            assert f"{url}/v1/rerank answered 429 Too Many Requests: queue full" in str(error)
            assert "retry after 3 s" in str(error)


@pytest.mark.parametrize("status, body", [(500, {"detail": "boom"}), (503, "not json")])
def test_server_errors_name_the_url_and_status(status, body):
    with stub_service(status=status, body=body) as (url, _):
        for error in both_paths(RemoteReranker(url), QUERY, DOCS):
            assert error.status_code == status and f"{url}/v1/rerank answered {status}" in str(
                error
            )
            assert ("boom" if status == 500 else "not json") in str(error)


def test_wrong_key_401_says_how_to_pass_it():
    with stub_service(status=401, body={"message": "invalid API key"}) as (url, _):
        (error, _) = both_paths(RemoteReranker(url, api_key="wrong"), QUERY, DOCS)
    assert "401" in str(error) and "api_key=" in str(error) and "CROSSRANK_API_KEY" in str(error)


@pytest.mark.parametrize(
    "answer",
    [
        {"results": [{"index": 7, "relevance_score": 0.5}]},
        {"results": [{"index": -1, "relevance_score": 0.5}]},
        {"data": []},
        "[1, 2]",
    ],
)
def test_an_answer_of_another_shape_is_a_clear_error(answer):
    with stub_service(status=200, body=answer) as (url, _):
        for error in both_paths(RemoteReranker(url), QUERY, DOCS):
            assert "did not answer like a crossrank /v1/rerank" in str(error)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_service_down_names_the_url():
    url = f"http://127.0.0.1:{free_port()}"  # bound then released: nothing listens
    for error in both_paths(RemoteReranker(url), QUERY, DOCS):
        assert f"cannot reach the crossrank server at {url}/v1/rerank" in str(error)
        assert "crossrank serve" in str(error) and error.status_code is None


def test_slow_service_times_out_with_the_url():
    with stub_service(status=200, body={"results": []}, delay=30) as (url, _):
        for error in both_paths(RemoteReranker(url, timeout=0.3), QUERY, DOCS):
            assert f"{url}/v1/rerank did not answer within 0.3 s" in str(error)


# ---------------------------------------------------------------------- the rule, for wrappers


def test_wrapper_fields_move_load_options_and_leave_the_arguments_alone():
    given = {"model": pathlib.Path("m"), "reranker_kwargs": {"dtype": "bfloat16", "cache_size": 8}}
    fields = crossrank.sources.wrapper_fields(given)
    assert fields == {"model": "m", "reranker_kwargs": {"cache_size": 8}, "dtype": "bfloat16"}
    assert given["reranker_kwargs"] == {"dtype": "bfloat16", "cache_size": 8}
    with pytest.raises(TypeError, match="reranker_kwargs must be a dict .* got list"):
        crossrank.sources.wrapper_fields({"reranker_kwargs": ["cache_size"]})


class Secret:
    """What pydantic's SecretStr offers, without pydantic."""

    def get_secret_value(self):
        return "k"


def test_open_scorer_reports_what_it_opened(bert_dir, reranker):
    open_scorer, Wrapper = crossrank.sources.open_scorer, types.SimpleNamespace
    loaded = open_scorer(Wrapper(model=bert_dir, device="cpu", max_length=64))
    assert loaded.reranker is loaded.scorer and loaded.scorer.max_length == 64
    assert loaded.fields == {
        "model": bert_dir,
        "device": "cpu",
        "max_length": 64,
        "dtype": "float32",
    }
    assert open_scorer(Wrapper(model=bert_dir, max_length=64), describe_loaded=False).fields == {}
    shared = open_scorer(Wrapper(), reranker, describe_loaded=False)
    assert shared.scorer is reranker and shared.fields["max_length"] == 128
    remote = RemoteReranker("http://127.0.0.1:9", model="m", timeout=5)
    assert open_scorer(Wrapper(reranker=remote)) == (
        remote,
        remote,
        {"base_url": "http://127.0.0.1:9", "model": "m", "timeout": 5.0},
    )
    by_url = open_scorer(Wrapper(base_url="http://127.0.0.1:9", api_key=Secret(), timeout=5))
    assert by_url.reranker is None and by_url.fields == {}
    assert by_url.scorer._headers == {"Authorization": "Bearer k"} and by_url.scorer.timeout == 5
    with pytest.raises(ValueError, match="batch_size is chosen by the server"):
        open_scorer(Wrapper(base_url="http://127.0.0.1:9", batch_size=4))
