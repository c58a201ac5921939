"""Shared fixtures: tiny random rerankers built at test time (crossrank.testing), no network.

Shared plain helpers and inputs live in :mod:`crossrank.testing`; no test module imports another.
"""

from __future__ import annotations

import pytest

from crossrank.errors import reset_notes
from crossrank.testing import DECODER_KINDS, save_decoder, save_model


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory):
    """Local checkpoint directories: name → path."""
    root = tmp_path_factory.mktemp("models")
    specs = {
        "bert": ("bert", 1),
        "bert-2logit": ("bert", 2),
        "xlm-roberta": ("xlm-roberta", 1),
        "electra": ("electra", 1),
        "deberta-v2": ("deberta-v2", 1),
    }
    return {name: save_model(root / name, kind, labels) for name, (kind, labels) in specs.items()}


@pytest.fixture(scope="session")
def bert_dir(model_dirs):
    return model_dirs["bert"]


@pytest.fixture(scope="session")
def decoder_dirs(tmp_path_factory):
    """Local decoder LLM checkpoints (Qwen3, Qwen2, Gemma, Gemma 2, Llama, ...): kind → path.

    Read-only: a test that writes into a model directory builds its own with ``save_decoder``.
    """
    root = tmp_path_factory.mktemp("decoders")
    return {kind: save_decoder(root / kind, kind) for kind in DECODER_KINDS}


@pytest.fixture(autouse=True)
def _fresh_notes():
    """Each test sees crossrank's one-time notes afresh."""
    reset_notes()
    yield
    reset_notes()


# --- ending the test process -------------------------------------------------------------------
# Once pytest is completely done (summary printed, exit status final), a session that imported Ray
# (the Ray tests start a local one) ends with os._exit(status) instead of the interpreter's
# teardown. ray.shutdown() leaves Ray's native gRPC threads running (event_engine,
# grpc_global_timer, gcs_client_io, worker.io: read from /proc/self/task at the end of this suite),
# and native threads still running while the interpreter and C++ static objects are torn down are a
# known cause of crashes at exit in Ray and gRPC. CI failed once with such a crash: SIGSEGV (exit
# 139) after "588 passed", with no stack captured. The exit status is pytest's own, and nothing any
# test checks is skipped. CROSSRANK_TEST_FULL_EXIT=1 keeps the full teardown; scripts/test.sh sets
# PYTHONFAULTHANDLER=1, which prints every thread's stack if a process crashes.
_SESSION = {}


def pytest_sessionfinish(session, exitstatus):
    _SESSION["session"] = session


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    import os
    import sys

    session = _SESSION.get("session")
    if (
        session is None
        or "ray" not in sys.modules  # the Ray tests were not collected: the usual teardown
        or os.environ.get("CROSSRANK_TEST_FULL_EXIT") == "1"
    ):
        return
    status = int(session.exitstatus)
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream has nothing left to flush
            pass
    os._exit(status)
