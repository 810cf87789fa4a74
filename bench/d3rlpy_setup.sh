#!/usr/bin/env bash
# Builds .venv-d3rlpy, the separate environment of bench/d3rlpy_baselines.py (model-free offline-RL
# baselines), from requirements-d3rlpy.txt. Separate because d3rlpy 2.8 pins gymnasium 1.0.0 and the old
# gym package, which must stay out of requirements.txt. Idempotent: a stamp file records the install and
# the environment is only rebuilt when requirements-d3rlpy.txt is newer than the stamp.
# Usage: bash bench/d3rlpy_setup.sh   (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV=.venv-d3rlpy
REQ=requirements-d3rlpy.txt
STAMP="$VENV/.installed"

if [[ -f "$STAMP" && ! "$REQ" -nt "$STAMP" && -x "$VENV/bin/python" ]]; then
  echo "$VENV is up to date"
  exit 0
fi
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -r "$REQ"
# Fail here, not in a training run, if the environment cannot import what the script needs.
"$VENV/bin/python" -c "import d3rlpy, gymnasium, mujoco, torch; gymnasium.make('HalfCheetah-v5').close()" 2>/dev/null
touch "$STAMP"
echo "$VENV ready: $("$VENV/bin/python" -c 'import d3rlpy; print("d3rlpy", d3rlpy.__version__)')"
