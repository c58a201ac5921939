"""One-off experiments, kept runnable (``python -m benchmarks.experiments.NAME``) for their record.

They answered one question each (see ``benchmarks/RESULTS.md``) and are not maintained: some reach
into crossrank's internals, and none writes a result file.
"""
