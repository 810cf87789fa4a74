#!/usr/bin/env bash
# Ship an offline policy into the HalfCheetah bundle: policy.onnx and critic.onnx of a finished
# `morec train-policy` run (a cell of bench/offline_grid.py), and its result in the bundle's card.
#   bash bench/ship_offline_policy.sh artifacts/offline/halfcheetah-medium/mopo_seed0 \
#        docs/results/offline/halfcheetah-medium/mopo_seed0.json     (a grid cell's result lies under docs/)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="${1:?usage: bench/ship_offline_policy.sh RUN_DIR [RESULT_JSON]}"
RESULT="${2:-$RUN/result.json}"
BUNDLE="${BUNDLE:-models/halfcheetah}"
for f in "$RUN/policy.onnx" "$RUN/critic.onnx" "$RESULT"; do
  [ -f "$f" ] || { echo "$f missing: finish the run first (morec train-policy ... --resume)" >&2; exit 1; }
done
cp "$RUN/policy.onnx" "$RUN/critic.onnx" "$BUNDLE/"
.venv/bin/python - "$BUNDLE" "$RUN" "$RESULT" <<'PY'
import json, sys
from pathlib import Path

from morec.bundle import update_card

bundle, run = Path(sys.argv[1]), Path(sys.argv[2])
result = json.loads(Path(sys.argv[3]).read_text())
update_card(bundle, "offline_policy", {"run": str(run), "files": ["policy.onnx", "critic.onnx"],
                                       **{k: result[k] for k in ("method", "dataset", "seed", "budget_steps",
                                                                 "final", "command", "config")}})
print(f"shipped {result['method']} seed {result['seed']} (score {result['final']['score_mean']:.1f}) into {bundle}")
PY
