#!/usr/bin/env bash
# Make the shipped default bundle models/halfcheetah/ from the benchmark's default run
# (bench/reward_pipeline.sh), built for the 50 ms control period:
#   - the ensemble's 5 elites only (the filter never uses the other 2 members);
#   - one discriminator a quarter of the teacher's width, distilled from 5 of the 40 reward snapshots
#     (`morec distill-reward --snapshots 5 --width 0.25 --steps 4000`; the ablation table of docs/results.md
#     shows what each step costs in ranking, the speed table what it saves);
#   - the card, with the student's diagnostics and the gap monitor's calibration (`morec monitor
#     --write-card`, 10 nominal episodes per set; the gap monitor table of docs/results.md).
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=distilled_w25
SRC=artifacts/bench/halfcheetah/reward_$NAME
DST=models/halfcheetah
PY=.venv/bin/python
[ -f $SRC/report.json ] || DISTILL_FROM=default TEACHER_SNAPSHOTS=5 NAME=$NAME SWEEP=1 \
  EXTRA="--width 0.25 --steps 4000" bash bench/reward_pipeline.sh
work=$(mktemp -d)
cp $SRC/ensemble.pt $SRC/dynamics_reward.pt $SRC/card.json "$work/"
$PY -m morec.cli export --bundle "$work"
$PY - "$work" "$SRC/report.json" <<'PYEOF'
import json, sys
from morec.bundle import update_card
work, report = sys.argv[1], json.load(open(sys.argv[2]))
update_card(work, "diagnostics", {"command": "bash bench/ship_halfcheetah.sh", "summary": report["summary"]})
update_card(work, "shipped", {"command": "bash bench/ship_halfcheetah.sh", "ensemble_members": "elites only",
                              "reward": "distilled from 5 snapshots, width 0.25",
                              "files": ["ensemble.onnx", "dynamics_reward.onnx", "card.json"]})
PYEOF
mkdir -p $DST
cp "$work/ensemble.onnx" "$work/dynamics_reward.onnx" "$work/card.json" $DST/
rm -rf "$work"
# Calibrated on the data's policy in both its forms (sampled, as it collected the data, and deterministic), judged
# for false alarms under two policies it never saw.
.venv/bin/morec monitor --bundle $DST --task halfcheetah \
  --policies models/behavior/halfcheetah/sac_50000.zip models/behavior/halfcheetah/sac_50000.zip:deterministic \
  --unseen-policies models/behavior/halfcheetah/sac_125000.zip:deterministic models/halfcheetah/policy.onnx \
  --variants real heavy slippery weak noisy delayed --episodes 10 --steps 1000 --window 50 \
  --out docs/results/monitor_policies_halfcheetah.json --write-card
ls -la $DST
