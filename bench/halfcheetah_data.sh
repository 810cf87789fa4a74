#!/usr/bin/env bash
# HalfCheetah-v5 data of the benchmarks, from the shipped behaviour policies; each file only when missing.
# Seconds to a minute each. Under artifacts/bench/halfcheetah/:
#   medium.npz              training data: 300k transitions of the medium SAC checkpoint (sac_50000, return 3529)
#   medium_eval.npz         evaluation, 50k each: held-out medium episodes,
#   expert_eval.npz         the best shipped checkpoint (sac_125000),
#   random_eval.npz         uniform random actions,
#   sine_eval.npz           an open-loop sine gait (a policy nothing was trained on),
#   medium_real_eval.npz    the medium policy on the perturbed `real` robot (its physics: mass, friction, gear)
set -euo pipefail
cd "$(dirname "$0")/.."
MOREC="${MOREC:-.venv/bin/python -m morec.cli}"
BEHAVIOR=models/behavior/halfcheetah
OUT=artifacts/bench/halfcheetah
mkdir -p $OUT
medium="--level medium --checkpoint sac_50000.zip --behavior $BEHAVIOR"
[ -f $OUT/medium.npz ] || $MOREC collect --task halfcheetah $medium --steps 300000 --seed 0 --out $OUT/medium.npz
[ -f $OUT/medium_eval.npz ] || $MOREC collect --task halfcheetah $medium --steps 50000 --seed 300 \
  --out $OUT/medium_eval.npz
[ -f $OUT/expert_eval.npz ] || $MOREC collect --task halfcheetah --level expert --behavior $BEHAVIOR \
  --steps 50000 --seed 200 --out $OUT/expert_eval.npz
[ -f $OUT/random_eval.npz ] || $MOREC collect --task halfcheetah --level random --steps 50000 --seed 100 \
  --out $OUT/random_eval.npz
[ -f $OUT/sine_eval.npz ] || $MOREC collect --task halfcheetah --level sine --steps 50000 --seed 400 \
  --out $OUT/sine_eval.npz
[ -f $OUT/medium_real_eval.npz ] || $MOREC collect --task halfcheetah $medium --variant real --steps 50000 \
  --seed 500 --out $OUT/medium_real_eval.npz
