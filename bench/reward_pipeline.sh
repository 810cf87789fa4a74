#!/usr/bin/env bash
# Data, ensemble, dynamics reward and its diagnostics report for one task, from its shipped behaviour policies:
# the experiment behind the "does the filter help?" table of docs/results.md (HalfCheetah, the default).
# About 1 h on 2 cores; results in artifacts/bench/<task>/.
#   bash bench/reward_pipeline.sh            # HalfCheetah, the default configuration
#   TASK=hopper bash bench/reward_pipeline.sh
#   EXTRA="--noise-negatives 0.5" NAME=noise bash bench/reward_pipeline.sh   # an ablation (reuses data + ensemble)
#   DISTILL_FROM=default TEACHER_SNAPSHOTS=5 NAME=distilled bash bench/reward_pipeline.sh   # one net for 5 snapshots
set -euo pipefail
cd "$(dirname "$0")/.."
MOREC="${MOREC:-.venv/bin/python -m morec.cli}"
TASK="${TASK:-halfcheetah}"
OUT=artifacts/bench/$TASK
NAME="${NAME:-default}"
THREADS="${THREADS:-1}"
mkdir -p "$OUT"

# Training data (the SAC checkpoint closest to a third of the D4RL expert return) and evaluation data
# (held-out medium episodes, the best shipped checkpoint, uniform random actions, and more).
MOREC="$MOREC" bash bench/task_data.sh "$TASK"

# The ensemble is shared by every reward variant.
[ -f $OUT/ensemble/ensemble.pt ] || $MOREC train-dynamics --data $OUT/medium.npz --bundle $OUT/ensemble \
  --threads "$THREADS" --max-minutes 30

BUNDLE=$OUT/reward_$NAME
if [ -n "${DISTILL_FROM:-}" ]; then
  $MOREC distill-reward --bundle $OUT/reward_$DISTILL_FROM --data $OUT/medium.npz --out "$BUNDLE" \
    --threads "$THREADS" ${TEACHER_SNAPSHOTS:+--snapshots $TEACHER_SNAPSHOTS} ${EXTRA:-}
else
  mkdir -p "$BUNDLE"
  cp $OUT/ensemble/ensemble.pt $OUT/ensemble/card.json "$BUNDLE/"
  $MOREC train-reward --data $OUT/medium.npz --bundle "$BUNDLE" --threads "$THREADS" ${EXTRA:-}
fi
$MOREC export --bundle "$BUNDLE"
$MOREC diagnose --bundle "$BUNDLE" --train-data $OUT/medium.npz \
  --eval-data medium_heldout=$OUT/medium_eval.npz expert=$OUT/expert_eval.npz random=$OUT/random_eval.npz \
  --horizon 50 --starts 200 --transitions 2000 --snapshot-sweep ${SWEEP:-1 5 10 20 40} \
  --out "$BUNDLE/report.json" --plot "$BUNDLE/report.png"
