"""A program that uses crossrank ends cleanly: no crash in the interpreter's teardown.

Native libraries (oneDNN through torch, ONNX Runtime, OpenVINO) keep thread pools and caches that
are destroyed when the process exits; a crash there comes after all the work is done, so no other
test sees it. This runs the work a user's script does in a fresh interpreter with its full teardown
and checks the exit status.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    from crossrank import Reranker
    from crossrank.testing import save_model

    path = save_model(sys.argv[1], "bert")
    pairs = [["what is a cat", "a cat is a small animal"], ["what is a cat", "stocks fell"]] * 5
    expected = None
    for options in [{}, {"device": ["cpu", "cpu"], "batch_size": 2}] + [
        {"backend": name} for name in sys.argv[2:]
    ]:
        reranker = Reranker(path, max_length=32, **options)
        scores = reranker.compute_score(pairs)
        expected = expected or scores
        assert max(abs(a - b) for a, b in zip(scores, expected)) < 1e-4, (options, scores)
        reranker.rank_many(["what is a cat"] * 3, [[p for _, p in pairs]] * 3)
    print("scored", flush=True)
    """
)


def test_a_scoring_program_exits_cleanly(tmp_path):
    backends = [
        name
        for name, module in (("onnx", "onnxruntime"), ("openvino", "openvino"))
        if importlib.util.find_spec(module) is not None
    ]
    # oneDNN linear layers on any CPU (the default only on non-Intel x86), full teardown on exit
    env = dict(os.environ, CROSSRANK_CPU_LINEAR="onednn", PYTHONFAULTHANDLER="1")
    for _ in range(2):  # a crash at exit can depend on timing: two runs
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(tmp_path / "model"), *backends],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, (done.returncode, done.stderr[-4000:])
        assert done.stdout.strip().endswith("scored")
