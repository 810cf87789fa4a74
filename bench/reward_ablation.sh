#!/usr/bin/env bash
# Ablations of the dynamics reward (docs/dynamics_reward.md): each variant changes one choice of the
# default run and is measured with the same diagnostics on the same data and ensemble (seed 0).
# Runs the default first when it is missing (bench/reward_pipeline.sh, about 1 h); then about
# 15 minutes per variant on 2 cores. Finished variants are skipped. Tables: bench/summarize_reward.py.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=artifacts/bench/halfcheetah
[ -f $OUT/reward_default/report.json ] || bash bench/reward_pipeline.sh

# name : RewardConfig (or DistillConfig) flags
VARIANTS=(
  "noise:--noise-negatives 0.5"                   # half the negatives are data with noise on s'
  "anchor10:--gen-nll-coef 10.0"                  # a generator held 10x closer to the data
  "calibrate_generator:--calibrate-on generator"  # the literal calibration on the generator's samples
)
# One discriminator distilled from 5 snapshots (the snapshot sweep shows 5 rank like 40; distilling all
# 40 costs 8x the teacher passes), at the teacher's width and at a quarter of it (the shipped bundle's).
[ -f $OUT/reward_distilled/report.json ] || \
  DISTILL_FROM=default TEACHER_SNAPSHOTS=5 NAME=distilled SWEEP=1 bash bench/reward_pipeline.sh
[ -f $OUT/reward_distilled_w25/report.json ] || DISTILL_FROM=default TEACHER_SNAPSHOTS=5 NAME=distilled_w25 \
  SWEEP=1 EXTRA="--width 0.25 --steps 4000" bash bench/reward_pipeline.sh
for variant in "${VARIANTS[@]}"; do
  name=${variant%%:*}
  [ -f $OUT/reward_$name/report.json ] || NAME=$name EXTRA=${variant#*:} SWEEP=1 bash bench/reward_pipeline.sh
done
.venv/bin/python bench/summarize_reward.py $OUT
