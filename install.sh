#!/usr/bin/env bash
# Install hyperpilot into ./.venv with everything it needs, offline-capable afterwards.
# torch is pinned to the CPU build (2.13.0); with a CUDA GPU, `pip install torch` for your
# CUDA version inside .venv afterwards.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[dev]"
echo "installed: $(.venv/bin/hyperpilot --help >/dev/null && echo hyperpilot) into .venv"
