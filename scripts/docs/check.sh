#!/usr/bin/env bash
# The docs checks scripts/test.sh runs last, in .venv-test (which the earlier stages filled with
# crossrank, both integrations and the service's third-party clients):
#   1. mkdocs build --strict: a broken link, reference or docstring cross-reference fails;
#   2. every Python block of README.md and docs/ runs (tests/docs/doc_blocks.py; blocks marked
#      <!-- doc-test: skip, needs the hub|a GPU --> are listed, not run);
#   3. the built site served on 127.0.0.1 and opened in Debian's headless chromium
#      (scripts/docs/browser_check.py); screenshots in site-screenshots/.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv-test}
export DISABLE_MKDOCS_2_WARNING=true NO_MKDOCS_2_WARNING=1 TOKENIZERS_PARALLELISM=false
"$VENV/bin/pip" install -q torch==2.13.0 -e ".[docs]"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then  # Debian's browser and its driver
    apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  fi
fi
"$VENV/bin/mkdocs" build --strict --quiet
echo "doc blocks skipped (hub or GPU):"
"$VENV/bin/python" tests/docs/test_doc_blocks.py | sed 's/^/  /'
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -p tests.docs.doc_blocks --markdown-docs README.md docs
"$VENV/bin/python" scripts/docs/browser_check.py --site site --screenshots site-screenshots
