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
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
# TensorFlow's C++ start-up chatter (oneDNN notice, no CUDA driver) is filtered out.
"$PY" scripts/demo.py "$@" 2> >(grep -v -E '^(I0000 |W0000 |E0000 .*cu|WARNING: All log messages before absl|To enable the following instructions)' >&2)
