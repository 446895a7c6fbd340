#!/usr/bin/env bash
# Write constraints.txt: the versions a fresh, unconstrained install resolves today (CPU torch 2.13.0,
# itself left out so that GPU users keep their CUDA build). Run the suite against them before committing.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)/venv
python3 -m venv "$venv" && . "$venv/bin/activate" && pip install -q torch==2.13.0 -e ".[test]"
{
  echo "# The versions CI installed and tested ($(python -V), CPU torch 2.13.0; torch itself is left out so"
  echo "# that GPU users keep their CUDA build). Regenerate with: bash .ci/constraints.sh"
  pip freeze --exclude-editable | grep -v -i '^torch==\|^-e\|^sdshape\|^#'
} > constraints.txt
echo "constraints.txt: $(grep -c '==' constraints.txt) pins" >&2
