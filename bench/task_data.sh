#!/usr/bin/env bash
# The data of the benchmarks of one task, from its shipped behaviour policies; each file only when missing.
# Seconds to a few minutes each. Under artifacts/bench/<task>/:
#   medium.npz              training data: 300k transitions of the task's shipped medium checkpoint (the one
#                           closest to a third of the best one's return; models/README.md)
#   medium_eval.npz         evaluation, 50k each: held-out medium episodes,
#   expert_eval.npz         the best shipped checkpoint,
#   random_eval.npz         uniform random actions,
#   sine_eval.npz           an open-loop sine gait (a policy nothing was trained on),
#   medium_real_eval.npz    the medium policy on the perturbed `real` robot (its physics: mass, friction, gear)
#   bash bench/task_data.sh halfcheetah
set -euo pipefail
cd "$(dirname "$0")/.."
TASK="${1:-halfcheetah}"
MOREC="${MOREC:-.venv/bin/python -m morec.cli}"
BEHAVIOR=models/behavior/$TASK
OUT=artifacts/bench/$TASK
mkdir -p $OUT
medium="--level medium --behavior $BEHAVIOR"
[ -f $OUT/medium.npz ] || $MOREC collect --task $TASK $medium --steps 300000 --seed 0 --out $OUT/medium.npz
[ -f $OUT/medium_eval.npz ] || $MOREC collect --task $TASK $medium --steps 50000 --seed 300 \
  --out $OUT/medium_eval.npz
[ -f $OUT/expert_eval.npz ] || $MOREC collect --task $TASK --level expert --behavior $BEHAVIOR \
  --steps 50000 --seed 200 --out $OUT/expert_eval.npz
[ -f $OUT/random_eval.npz ] || $MOREC collect --task $TASK --level random --steps 50000 --seed 100 \
  --out $OUT/random_eval.npz
[ -f $OUT/sine_eval.npz ] || $MOREC collect --task $TASK --level sine --steps 50000 --seed 400 \
  --out $OUT/sine_eval.npz
[ -f $OUT/medium_real_eval.npz ] || $MOREC collect --task $TASK $medium --variant real --steps 50000 \
  --seed 500 --out $OUT/medium_real_eval.npz
