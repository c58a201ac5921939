"""A crash injected into Ray Data scoring actors from outside crossrank, for tests/ray/test_ray_data.py.

Python runs ``sitecustomize`` at start-up in every process that has this directory on its
``PYTHONPATH``: the tests put it there for Ray's workers (a ``runtime_env``, or the environment
of a ``crossrank rerank-table`` subprocess). With ``CROSSRANK_TEST_FAULT`` naming a JSON file
``{"log": PATH, "once": bool, "poison": TEXT}``, the scoring actor of ``crossrank.ray.dataset``
is changed as that module is imported: the model of each actor it builds exits the process on the
spot (``os._exit``: no cleanup, no exception, as a native crash or an out-of-memory kill) when it
is asked to score

- ``once``: the first block of the job, in whichever actor (``log`` is created exclusively, so a
  restarted actor scores normally);
- else: every block holding a passage equal to ``poison``.

Each crash appends the pid of the process that died to ``log``. Nothing is imported before
crossrank itself is, so Ray's other Python processes start as usual.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import sys

TARGET = "crossrank.ray.dataset"


def crash_if_faulty(pairs, fault) -> None:
    """Exit this process if ``fault`` says scoring ``pairs`` crashes it; log the pid first."""
    if fault["once"]:
        try:
            os.close(os.open(fault["log"], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    elif fault["poison"] not in [text for _, text in pairs]:
        return
    with open(fault["log"], "a", encoding="utf-8") as log:
        log.write(f"{os.getpid()}\n")
    os._exit(17)


def inject(module, fault) -> None:
    """Give each scoring actor of the freshly imported ``crossrank.ray.dataset`` a faulty model.

    The fault strikes where the model scores, after the actor's own bookkeeping of the block.
    """
    actor = module.BlockScorer
    build = actor.__init__

    def build_faulty(self, *args, **kwargs):
        build(self, *args, **kwargs)
        score = self.reranker.compute_score

        def faulty_score(pairs, *more, **options):
            crash_if_faulty(pairs, fault)
            return score(pairs, *more, **options)

        self.reranker.compute_score = faulty_score

    actor.__init__ = build_faulty


class InjectOnImport:
    """A meta-path finder that runs :func:`inject` right after ``TARGET`` is executed."""

    def __init__(self, fault) -> None:
        self.fault = fault

    def find_spec(self, name, path=None, target=None):
        if name != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            inject(module, self.fault)

        spec.loader.exec_module = exec_module
        return spec


if os.environ.get("CROSSRANK_TEST_FAULT"):
    with open(os.environ["CROSSRANK_TEST_FAULT"], encoding="utf-8") as stream:
        sys.meta_path.insert(0, InjectOnImport(json.load(stream)))
