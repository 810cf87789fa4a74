#!/usr/bin/env bash
# Make the shipped bundle models/<task>/ from the benchmark's default run (bench/reward_pipeline.sh), built for
# the control period (HalfCheetah's is the default of `make demo`):
#   - the ensemble's 5 elites only (the filter never uses the other 2 members);
#   - one discriminator a quarter of the teacher's width, distilled from 5 of the 40 reward snapshots
#     (`morec distill-reward --snapshots 5 --width 0.25 --steps 4000`; the ablation table of docs/results.md
#     shows what each step costs in ranking, the speed table what it saves);
#   - the card, with the student's diagnostics and the gap monitor's calibration (`morec monitor
#     --write-card`, 10 nominal episodes per set; the gap monitor table of docs/results.md).
#   bash bench/ship_bundle.sh halfcheetah
set -euo pipefail
cd "$(dirname "$0")/.."
TASK="${1:-halfcheetah}"
NAME=distilled_w25
SRC=artifacts/bench/$TASK/reward_$NAME
DST=models/$TASK
BEHAVIOR=models/behavior/$TASK
PY=.venv/bin/python
[ -f $SRC/report.json ] || TASK=$TASK DISTILL_FROM=default TEACHER_SNAPSHOTS=5 NAME=$NAME SWEEP=1 \
  EXTRA="--width 0.25 --steps 4000" bash bench/reward_pipeline.sh
work=$(mktemp -d)
cp $SRC/ensemble.pt $SRC/dynamics_reward.pt $SRC/card.json "$work/"
$PY -m morec.cli export --bundle "$work"
$PY - "$work" "$SRC/report.json" "$TASK" <<'PYEOF'
import json, sys
from morec.bundle import update_card
work, report, task = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
command = f"bash bench/ship_bundle.sh {task}"
update_card(work, "diagnostics", {"command": command, "summary": report["summary"]})
update_card(work, "shipped", {"command": command, "ensemble_members": "elites only",
                              "reward": "distilled from 5 snapshots, width 0.25",
                              "files": ["ensemble.onnx", "dynamics_reward.onnx", "card.json"]})
PYEOF
mkdir -p $DST
cp "$work/ensemble.onnx" "$work/dynamics_reward.onnx" "$work/card.json" $DST/
rm -rf "$work"
# Calibrated on the data's policy in both its forms (sampled, as it collected the data, and deterministic), judged
# for false alarms under policies it never saw (the best checkpoint, and the offline policy where one is shipped),
# on every perturbed variant of the task.
read -r medium expert variants < <($PY - "$BEHAVIOR" "$TASK" <<'PYEOF'
import sys
from morec.behavior import pick_checkpoint
from morec.task_spec import load_task_spec
behavior, task = sys.argv[1], sys.argv[2]
print(pick_checkpoint(behavior, "medium")["policy"], pick_checkpoint(behavior, "expert")["policy"],
      ",".join(v for v in load_task_spec(task).variants if v != "nominal"))
PYEOF
)
unseen="$BEHAVIOR/$expert:deterministic"
[ -f $DST/policy.onnx ] && unseen="$unseen $DST/policy.onnx"
.venv/bin/morec monitor --bundle $DST --task $TASK \
  --policies $BEHAVIOR/$medium $BEHAVIOR/$medium:deterministic --unseen-policies $unseen \
  --variants ${variants//,/ } --episodes 10 --steps 1000 --window 50 \
  --out docs/results/monitor_policies_$TASK.json --write-card
ls -la $DST
