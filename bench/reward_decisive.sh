#!/usr/bin/env bash
# Issue 9's decisive measurements of a task's shipped bundle (its ONNX graphs; HalfCheetah by default) on data
# from policies and a robot it never saw: within-pair ranking against the free baseline, the pooled Pearson(r_D, log MAE), and
# termination AUROC along 50-step open-loop rollouts. About a minute on 1 core after the data
# (bench/task_data.sh); the report is docs/results/reward_decisive_<task>.json, and `morec diagnose` prints the
# table of docs/dynamics_reward.md.
#   bash bench/reward_decisive.sh                                                        # the shipped bundle
#   TASK=hopper bash bench/reward_decisive.sh                                            # another task's
#   BUNDLE=artifacts/bench/halfcheetah/reward_x OUT=/tmp/x.json SEED=1 bash bench/reward_decisive.sh   # others
#   (TRAIN_DATA: the bundle's training data, when not the task's medium.npz)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
export MOREC="${MOREC:-nice -n 15 .venv/bin/python -m morec.cli}"
TASK="${TASK:-halfcheetah}"
DATA=artifacts/bench/$TASK
OUT="${OUT:-docs/results/reward_decisive_$TASK.json}"
bash bench/task_data.sh "$TASK"
$MOREC diagnose --bundle "${BUNDLE:-models/$TASK}" --train-data "${TRAIN_DATA:-$DATA/medium.npz}" \
  --eval-data medium_heldout=$DATA/medium_eval.npz expert=$DATA/expert_eval.npz random=$DATA/random_eval.npz \
  sine=$DATA/sine_eval.npz medium_real=$DATA/medium_real_eval.npz \
  --horizon 50 --starts "${STARTS:-1000}" --transitions "${TRANSITIONS:-10000}" --seed "${SEED:-0}" --threads 1 \
  --out "$OUT" \
  --plot "${PLOT:-$DATA/reward_decisive.png}"
