#!/usr/bin/env bash
# After bench/ship_halfcheetah.sh: recalibrate the gap monitor into the new card, then the closed-loop
# rows that depend on the bundle, in lockstep (nominal and real robot) and in real time (nominal), 3 seeds.
# About 45 minutes on 2 cores. The bundle-independent rows (MuJoCo MPC, behaviour policy) are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/morec monitor --bundle models/halfcheetah --task halfcheetah \
  --policy models/behavior/halfcheetah/sac_50000.zip --variants real heavy slippery weak noisy delayed \
  --episodes 10 --steps 1000 --window 50 --out artifacts/bench/monitor/halfcheetah.json --write-card
.venv/bin/python bench/closed_loop.py --seeds 0 1 2 --only "filtered MPC + prior" "unfiltered MPC + prior"
.venv/bin/python bench/closed_loop.py --mode realtime --seeds 0 1 2 --variants nominal \
  --only "filtered MPC + prior" "unfiltered MPC + prior" "filtered MPC + prior, uncompensated"
