#!/usr/bin/env bash
# MOREC-MOPO with the reward recipe's multistep reward (HalfCheetah medium, seed 0), its threshold at the data's
# 5% quantile, beside the disagreement-ended MOPO on the same ensemble; then the filter along each policy's
# own model rollouts (bench/filter_along_policy_rollouts.py), scored as the run scored them. About 2 hours.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
RUNS=artifacts/offline/halfcheetah-medium/reward
RESULTS=docs/results/offline/halfcheetah-medium/reward
BUNDLES=artifacts/bench/halfcheetah/offline_bundles
bash bench/offline_reward_bundle.sh multistep_h50 multistep_h50_distilled
$PY bench/offline_grid.py --seeds 0 --methods reward/morec-mopo-multistep_h50-q05 \
  reward/morec-mopo-multistep_h50_distilled-q05 reward/mopo-disagreement-end
along() {  # policy run, bundle, threshold, out
  [ -f "$4" ] || nice -n 5 $PY bench/filter_along_policy_rollouts.py --policy "$RUNS/$1/policy.onnx" \
    --bundle "$BUNDLES/$2" --threshold "$3" ${5:-} --out "$4"
}
threshold() { $PY -c "import json, sys; print(json.load(open(sys.argv[1]))['threshold_used'])" "$RESULTS/$1_seed0.json"; }
five=$(threshold morec-mopo-multistep_h50-q05) distilled=$(threshold morec-mopo-multistep_h50_distilled-q05)
along morec-mopo-multistep_h50-q05_seed0 multistep_h50 "$five" \
  $RESULTS/filter_along_rollouts_morec-mopo-multistep_h50-q05_seed0.json --onnx
along morec-mopo-multistep_h50_distilled-q05_seed0 multistep_h50_distilled "$distilled" \
  $RESULTS/filter_along_rollouts_morec-mopo-multistep_h50_distilled-q05_seed0.json --onnx
# The control's policy under each form of the reward: 5 snapshots, all 40 (the torch checkpoint), distilled
along mopo-disagreement-end_seed0 multistep_h50 "$five" \
  $RESULTS/filter_along_rollouts_mopo-disagreement-end_seed0_multistep_h50_5snapshots.json --onnx
along mopo-disagreement-end_seed0 multistep_h50 "$five" \
  $RESULTS/filter_along_rollouts_mopo-disagreement-end_seed0_multistep_h50_40snapshots.json
along mopo-disagreement-end_seed0 multistep_h50_distilled "$distilled" \
  $RESULTS/filter_along_rollouts_mopo-disagreement-end_seed0_multistep_h50_distilled.json --onnx
