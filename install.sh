#!/usr/bin/env bash
# Install hyperpilot into ./.venv with everything it needs, offline-capable afterwards.
# torch is pinned to the CPU build (2.13.0); with a CUDA GPU, `pip install torch` for your
# CUDA version inside .venv afterwards.
set -euo pipefail
cd "$(dirname "$0")"
# bubblewrap isolates every trial (see README, "Sandbox"). Installed when missing and we are
# root on a Debian/Ubuntu system; otherwise hyperpilot falls back to weaker layers
# (`hyperpilot doctor` says which are active).
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null) \
      || echo "warning: could not install bubblewrap; trials will run with weaker isolation" >&2
  else
    echo "note: bubblewrap (bwrap) is not installed; install it (e.g. 'sudo apt-get install bubblewrap') for full trial isolation" >&2
  fi
fi
# PostgreSQL serves the shared-storage test (tests/test_shared_storage.py starts a server of its own
# on 127.0.0.1 in a temp folder, as the postgres user, and stops it). Same rule as bubblewrap: installed
# when missing and we are root on Debian/Ubuntu; without it that test is skipped, never the install.
# (Debian's package also creates its default cluster, started only where an init system runs.)
if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) \
      || echo "warning: could not install postgresql; the PostgreSQL storage test will be skipped" >&2
  else
    echo "note: PostgreSQL is not installed; the PostgreSQL storage test will be skipped (e.g. 'sudo apt-get install postgresql')" >&2
  fi
fi
# Chromium and ChromeDriver serve the web-chat test (tests/test_serve.py drives `hyperpilot serve` in a
# headless browser through Selenium). Same rule: installed when missing and we are root on Debian/Ubuntu;
# without them that test is skipped.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) \
      || echo "warning: could not install chromium; the web-chat browser test will be skipped" >&2
  else
    echo "note: Chromium is not installed; the web-chat browser test will be skipped (e.g. 'sudo apt-get install chromium chromium-driver')" >&2
  fi
fi
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
