"""Scoring on a running ``crossrank serve`` over HTTP (httpx; imports no torch).

>>> from crossrank.client import RemoteReranker
>>> RemoteReranker("http://127.0.0.1:8080").info()["base_url"]
'http://127.0.0.1:8080'
"""

from .remote import RemoteReranker, RemoteRerankError

__all__ = ["RemoteReranker", "RemoteRerankError"]
