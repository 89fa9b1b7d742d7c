#!/usr/bin/env bash
# Quick start, command 2: installs mixmatch_tf with its test extra, runs the default suite.
# Extra arguments go to pytest (e.g. -m slow for the long reproductions).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$(command -v python3 || command -v python)}"
"$PY" -m pip install --quiet -e ".[test]"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec "$PY" -m pytest -q "$@"
