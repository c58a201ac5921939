#!/usr/bin/env bash
# Run README.md's install lines exactly as written, each block in a new virtual environment with the
# pip that python's ensurepip ships (23.2 on python 3.11), in a copy of the working tree.
#
# Which lines: in every ```bash block right after a "<!-- ci: install ... -->" comment, the lines
# that contain "pip install" (run in order; a block's other lines, such as a first `crossrank rank`
# that downloads a model, are left out). Blocks run in README order in the same copy, so a line
# that uses the quick start's .venv finds it. pip's cache is shared, so wheels download once.
#   scripts/readme_install.sh            # all marked blocks
#   scripts/readme_install.sh --list     # print the lines only
#   ONLY="3 5" scripts/readme_install.sh  # only those blocks (numbered as --list shows)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1

lines=$("$PY" - "$root/README.md" <<'PYEOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
blocks = re.findall(r"<!-- ci: install[^>]*-->\n```bash\n(.*?)```", text, re.S)
if not blocks:
    sys.exit("README.md has no <!-- ci: install --> blocks")
for number, block in enumerate(blocks, 1):
    for line in block.splitlines():
        if "pip install" in line and not line.lstrip().startswith("#"):
            print(f"{number}\t{line}")
PYEOF
)
if [ "${1:-}" = "--list" ]; then printf '%s\n' "$lines"; exit 0; fi

work=$(mktemp -d "${TMPDIR:-/tmp}/crossrank-readme-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/repo"
# The working tree's tracked files: what a fresh clone holds (no venvs, runs or exports).
(cd "$root" && git ls-files -z | xargs -0 cp --parents -t "$work/repo")

current=""
while IFS=$'\t' read -r block line; do
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $block "* ]]; then continue; fi
  if [ "$block" != "$current" ]; then
    current=$block
    "$PY" -m venv "$work/venv-$block"
    echo "== README install block $block (pip $("$work/venv-$block/bin/pip" --version | cut -d' ' -f2)), at ${SECONDS} s"
  fi
  echo "\$ $line"
  # `pip` is the new venv's own: activated as a user would before pasting the line.
  (cd "$work/repo" && PATH="$work/venv-$block/bin:$PATH" VIRTUAL_ENV="$work/venv-$block" \
    bash -euo pipefail -c "$line" >"$work/log" 2>&1) || { tail -40 "$work/log"; echo "README install line failed: $line" >&2; exit 1; }
done <<<"$lines"
echo "README install lines: all passed in ${SECONDS} s"
