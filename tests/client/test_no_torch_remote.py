"""Guard rail: scoring on a crossrank server imports no torch, in the core and in both wrappers.

Each check runs in a fresh interpreter, since this test process has torch loaded already.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest

PREAMBLE = """
import socket, sys
with socket.socket() as sock:  # a port nothing listens on: each call fails fast, as remote
    sock.bind(("127.0.0.1", 0))
    URL = f"http://127.0.0.1:{sock.getsockname()[1]}"
from crossrank.client.remote import RemoteReranker, RemoteRerankError

def refused(call):
    try:
        call()
    except RemoteRerankError:
        return
    raise AssertionError("the call did not go to the server")
"""
CHECK = """
heavy = sorted(name for name in ("torch", "transformers") if name in sys.modules)
assert not heavy, f"a remote-only scorer imported {heavy}"
print("no torch")
"""
SCRIPTS = {
    "core": """
from crossrank.sources import resolve_reranker, open_scorer
import crossrank.sharing, crossrank.integration, crossrank.scorer
remote = resolve_reranker(base_url=URL, model="served")
refused(lambda: remote.rank("q", ["a", "b"], top_k=1))
refused(lambda: remote.compute_score(["q", "a"]))
""",
    "langchain_crossrank": """
from langchain_core.documents import Document
from langchain_crossrank import CrossRankCrossEncoder, CrossRankRerank
docs = [Document(page_content="a", metadata={"score": 1.0})]
refused(lambda: CrossRankRerank(base_url=URL).compress_documents(docs, "q"))
fused = CrossRankRerank(reranker=RemoteReranker(URL), fusion="rrf")
refused(lambda: fused.compress_documents(docs, "q"))
refused(lambda: CrossRankCrossEncoder(base_url=URL).score([("q", "a")]))
""",
    "llama_index.postprocessor.crossrank": """
from llama_index.core.schema import NodeWithScore, TextNode
from llama_index.postprocessor.crossrank import CrossRankRerank
nodes = [NodeWithScore(node=TextNode(text="a"), score=1.0)]
refused(lambda: CrossRankRerank(base_url=URL).postprocess_nodes(nodes, query_str="q"))
shared = CrossRankRerank(reranker=RemoteReranker(URL), fusion="minmax")
refused(lambda: shared.postprocess_nodes(nodes, query_str="q"))
""",
}


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


@pytest.mark.parametrize("package", list(SCRIPTS))
def test_a_remote_only_scorer_imports_no_torch(package):
    if package != "core" and not installed(package):
        pytest.skip(f"{package} is not installed")
    pytest.importorskip("httpx", reason="the remote client needs httpx")
    script = textwrap.dedent(PREAMBLE + SCRIPTS[package] + CHECK)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("no torch")
