#!/usr/bin/env bash
# The experiment behind the "does the filter help?" table of docs/results.md, from shipped behaviour policies
# to the diagnostics report. About 1 h on 2 cores; results in artifacts/bench/halfcheetah/.
#   bash bench/halfcheetah_reward.sh            # the default configuration
#   EXTRA="--noise-negatives 0.5" NAME=noise bash bench/halfcheetah_reward.sh   # an ablation (reuses data + ensemble)
#   DISTILL_FROM=default TEACHER_SNAPSHOTS=5 NAME=distilled bash bench/halfcheetah_reward.sh   # one net for 5 snapshots
set -euo pipefail
cd "$(dirname "$0")/.."
MOREC="${MOREC:-.venv/bin/python -m morec.cli}"
OUT=artifacts/bench/halfcheetah
NAME="${NAME:-default}"
THREADS="${THREADS:-1}"
mkdir -p "$OUT"

# Training data (the SAC checkpoint closest to a third of the D4RL expert return: sac_50000, return 3529) and
# evaluation data (held-out medium episodes, the best shipped checkpoint, uniform random actions, and more).
MOREC="$MOREC" bash bench/task_data.sh halfcheetah

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
