#!/usr/bin/env bash
# Rebuilds models/inverted_pendulum, the tiny InvertedPendulum-v5 bundle the integration tests and
# the controller default to, with the project's own CLI. About 13 minutes on 2 CPU cores (SAC ~10).
#
# Data: the replay buffer of a short SAC run ("medium-replay": random exploration first, then an
# improving policy), so the data covers the slider's travel, not only the first steps of falling
# episodes that uniformly random actions produce. Models are small (ensemble 2 x 64, reward from
# 2 discriminator snapshots) to keep the bundle under 1 MB. Scratch files go to artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
MOREC=${MOREC:-.venv/bin/morec}
WORK=artifacts/inverted_pendulum_bundle
OUT=models/inverted_pendulum

# SAC reaches return 1000 by 16k steps; the checkpoint nearest a third of that (12k steps, return
# 156) is "medium", and its replay buffer is the data. Skipped when already trained (same command).
SAC=(behavior train --task inverted_pendulum --out "$WORK/behavior" --total-steps 20000 --seed 0
     --checkpoint-every 4000 --learning-starts 1000 --eval-episodes 3)
if [ ! -f "$WORK/behavior/checkpoints.json" ]; then
  $MOREC "${SAC[@]}"
fi
$MOREC collect --task inverted_pendulum --level medium-replay --behavior "$WORK/behavior" \
  --out "$WORK/medium_replay.npz"
$MOREC train-dynamics --data "$WORK/medium_replay.npz" --bundle "$WORK/bundle" --threads 1 \
  --hidden 64 64 --weight-decay 2.5e-5 5e-5 1e-4 --max-epochs 100
$MOREC train-reward --data "$WORK/medium_replay.npz" --bundle "$WORK/bundle" --threads 1 \
  --iterations 1500 --keep-snapshots 6 --snapshot-stride 3 --noise-negatives 0.5
$MOREC export --bundle "$WORK/bundle"

# The card also records where the data came from (the collect and SAC commands, the checkpoints).
"$(dirname "$MOREC")/python" - "$WORK" "morec ${SAC[*]}" <<'EOF'
import json, sys
from pathlib import Path

from morec.bundle import update_card
from morec.dataset import Dataset

work = Path(sys.argv[1])
behavior = json.loads((work / "behavior" / "checkpoints.json").read_text())
update_card(work / "bundle", "data", {
    "dataset": Dataset.load(work / "medium_replay.npz").metadata,
    "behavior": {"command": sys.argv[2], **behavior},
    "script": "models/make_inverted_pendulum.sh",
})
EOF
mkdir -p "$OUT"
cp "$WORK/bundle/ensemble.onnx" "$WORK/bundle/dynamics_reward.onnx" "$WORK/bundle/card.json" "$OUT/"
du -ch "$OUT"/* | tail -1
