"""crossrank's benchmarks, run from the repository root as ``python -m benchmarks.NAME``.

Each maintained benchmark writes a JSON result under ``benchmarks/results/`` (schema and the
shared writer in ``benchmarks/common.py``); one-off experiments live in
``benchmarks/experiments/``; ``benchmarks/RESULTS.md`` says what was tried and what it showed.
"""
