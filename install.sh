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
# llama-cpp-python (the embedded planner LLM) has no Linux wheel: the first install compiles
# llama.cpp (system cmake + a C++ compiler, a few minutes); pip's wheel cache makes later
# installs quick. Set CMAKE_ARGS="-DGGML_CUDA=on" yourself for a CUDA build.
CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" .venv/bin/python -m pip install --quiet "llama-cpp-python[server]>=0.3.16"
.venv/bin/python -m pip install --quiet -e ".[dev]"
echo "installed: $(.venv/bin/hyperpilot --help >/dev/null && echo hyperpilot) into .venv"
