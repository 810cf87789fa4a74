#!/usr/bin/env bash
# Bundles for offline policy learning with the reward recipe's rewards (bench/offline_grid.py's reward/ methods):
# the recipe's ensemble and one row's reward (seed 0), exported with 5 of its snapshots. One snapshot saturates
# (most scores sit at r_D's floor or ceiling, so no data quantile separates them); all 40 cost 1.5 s per
# 2000-row rollout step on one core, 5 cost 0.2 s.
#   bash bench/offline_reward_bundle.sh multistep_h50 default
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=artifacts/bench/halfcheetah
for row in "$@"; do
  src=$DATA/recipe_${row}_seed0 dst=$DATA/offline_bundles/$row
  [ -f "$dst/dynamics_reward.onnx" ] && { echo "done: $dst"; continue; }
  [ -f "$src/dynamics_reward.pt" ] || bash bench/reward_recipe.sh "$row"
  mkdir -p "$dst"
  cp "$src/ensemble.pt" "$src/dynamics_reward.pt" "$src/card.json" "$dst/"
  .venv/bin/python -m morec.cli export --bundle "$dst" --snapshots 5
done
