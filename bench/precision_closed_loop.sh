#!/usr/bin/env bash
# What reduced precision costs where it matters: the demo's planner (elite-mean MPPI around the behaviour
# policy) through an int8 copy of the shipped HalfCheetah ensemble against the fp32 original, 3 seeds, nominal
# and perturbed robot; in lockstep (what the model's precision costs in return, whatever the machine's load)
# and, with MODES="lockstep realtime", in real time too. The one-step error and the latency of each precision
# alone are in docs/deployment.md (bench/runtime_speed.py); fp16 is left out here because on CPU it changes
# neither (its one-step error is within 0.0005 of fp32's, and it is no faster).
#
#     bash bench/precision_closed_loop.sh            # results in artifacts/bench/closed_loop/precision/
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
INT8=artifacts/bench/precision/halfcheetah_int8
if [ ! -f "$INT8/ensemble.onnx" ]; then
  # The whole bundle with the int8 copy as its ensemble (reward, policy and card unchanged). The copy is written
  # last and atomically, so an interrupted run never leaves the fp32 ensemble here to be taken for int8.
  mkdir -p "$INT8"
  for f in models/halfcheetah/*; do [ "$(basename "$f")" = ensemble.onnx ] || cp "$f" "$INT8/"; done
  $PY -c "from morec.runtime import reduced_precision_copy as c; c('models/halfcheetah/ensemble.onnx', '$INT8/ensemble.onnx', 'int8')"
fi
for mode in ${MODES:-lockstep}; do
  $PY bench/closed_loop.py --only "elite-mean MPC + prior" --mode "$mode" --tag "precision/fp32_$mode"
  $PY bench/closed_loop.py --only "elite-mean MPC + prior" --mode "$mode" --bundle "$INT8" --tag "precision/int8_$mode"
done
