"""Scoring on a running ``crossrank serve`` over HTTP (httpx; imports no torch)."""
