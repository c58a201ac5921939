#!/usr/bin/env bash
# Build the four packages a user installs (crossrank, langchain-crossrank,
# llama-index-postprocessor-crossrank, crossrank-haystack) as wheel + sdist, check them with twine, install the four
# wheels together in a fresh virtual environment (not editable, no checkout on the path) and run
# a smoke subset of the tests against the installed code.
#   scripts/package_check.sh            # dist/ is written to a temporary directory
#   DIST=dist scripts/package_check.sh  # keep the built files in dist/
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
TORCH=torch==2.13.0
export PIP_DISABLE_PIP_VERSION_CHECK=1 TOKENIZERS_PARALLELISM=false
work=$(mktemp -d "${TMPDIR:-/tmp}/crossrank-package-XXXXXX")
trap 'rm -rf "$work"' EXIT
dist=${DIST:-$work/dist}
mkdir -p "$dist"

"$PY" -m venv "$work/tools"
"$work/tools/bin/pip" install -q build twine
for package in . integrations/langchain integrations/llama-index integrations/haystack; do
  "$work/tools/bin/python" -m build -q --outdir "$dist" "$root/$package" >/dev/null
done
"$work/tools/bin/twine" check --strict "$dist"/*

"$PY" -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$TORCH"
"$work/venv/bin/pip" install -q "$dist"/crossrank-*.whl
"$work/venv/bin/pip" install -q "$dist"/langchain_crossrank-*.whl \
  "$dist"/llama_index_postprocessor_crossrank-*.whl "$dist"/crossrank_haystack-*.whl \
  pytest hypothesis langchain-classic fastapi uvicorn prometheus-client httpx
echo "installed: $("$work/venv/bin/crossrank" --version)"
# Run from a copy of the tests only, so nothing from the checkout shadows the installed packages.
mkdir -p "$work/smoke/tests" "$work/smoke/integrations"
cp "$root"/tests/conftest.py "$root"/tests/core/test_rank.py "$root"/tests/core/test_selection.py \
  "$root"/tests/core/test_inputs.py "$work/smoke/tests/"
cp -r "$root/integrations/langchain/tests" "$work/smoke/integrations/langchain"
cp -r "$root/integrations/llama-index/tests" "$work/smoke/integrations/llama-index"
cp -r "$root/integrations/haystack/tests" "$work/smoke/integrations/haystack"
cp -r "$root/examples" "$work/smoke/"
cd "$work/smoke"
"$work/venv/bin/python" - <<'PY'
import crossrank, langchain_crossrank, llama_index.postprocessor.crossrank as li
import haystack_integrations.components.rankers.crossrank as hs
for module in (crossrank, langchain_crossrank, li, hs):
    assert "site-packages" in module.__file__, module.__file__
print("imports from the installed wheels:", crossrank.__version__)
PY
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider -m "not slow" tests
for package in langchain llama-index haystack; do
  "$work/venv/bin/python" -m pytest -q -p no:cacheprovider -m "not slow" "integrations/$package"
done
echo "packages: built, twine-checked, installed from wheels, smoke tests passed"
