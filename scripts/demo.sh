#!/usr/bin/env bash
# Quick start, command 1: the main job on the bundled digits, with a results table.
# Installs mixmatch_tf (editable) into the current Python environment if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$(command -v python3 || command -v python)}"
if ! "$PY" -c "import importlib.metadata as m; m.version('mixmatch_tf')" 2>/dev/null; then
  echo "Installing mixmatch_tf and its dependencies into $("$PY" -c 'import sys; print(sys.prefix)') ..."
  "$PY" -m pip install --quiet -e .
fi
"$PY" scripts/demo.py "$@"
