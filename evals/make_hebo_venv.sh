#!/usr/bin/env bash
# Make HEBO's own venv (evals/.hebo-venv). HEBO pins numpy<1.25 and old scikit-learn, so it
# can never share the project's environment; evals run it as a subprocess.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .hebo-venv
.hebo-venv/bin/pip install --quiet --upgrade pip
.hebo-venv/bin/pip install --quiet "torch==2.13.0" "numpy==1.24.4" "pandas<2.3" "scikit-learn==1.5.2" "scipy<1.13" "matplotlib<3.10" hebo
echo "HEBO venv ready: $(pwd)/.hebo-venv"
