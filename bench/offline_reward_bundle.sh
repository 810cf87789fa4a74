#!/usr/bin/env bash
# Bundles for offline policy learning with the reward recipe's rewards (bench/offline_grid.py's reward/ methods):
# the recipe's ensemble and one row's reward (seed 0).
#   ROW: exported with 5 of its snapshots. One snapshot saturates (most scores sit at r_D's floor or ceiling,
#        so no data quantile separates them); all 40 cost 1.5 s per 2000-row rollout step on one core, 5 cost
#        0.2 s. For the multistep rewards 5 keep little of the signal (docs/results.md).
#   ROW_distilled: one network distilled from all the snapshots (`morec distill-reward`, 4000 steps), at the
#        cost of one snapshot.
#   bash bench/offline_reward_bundle.sh multistep_h50 multistep_h50_distilled
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=artifacts/bench/halfcheetah
MOREC="nice -n 5 .venv/bin/python -m morec.cli"
for name in "$@"; do
  row=${name%_distilled}
  src=$DATA/recipe_${row}_seed0 dst=$DATA/offline_bundles/$name
  [ -f "$dst/dynamics_reward.onnx" ] && { echo "done: $dst"; continue; }
  [ -f "$src/dynamics_reward.pt" ] || bash bench/reward_recipe.sh "$row"
  if [ "$name" != "$row" ]; then
    $MOREC distill-reward --bundle "$src" --data $DATA/medium.npz --out "$dst" --threads 2 --steps 4000
    $MOREC export --bundle "$dst"
  else
    mkdir -p "$dst"
    cp "$src/ensemble.pt" "$src/dynamics_reward.pt" "$src/card.json" "$dst/"
    $MOREC export --bundle "$dst" --snapshots 5
  fi
done
