# morec-stack: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean-venv

setup: $(STAMP)

# Re-installs only when the pinned requirements or package metadata change.
$(STAMP): requirements.txt ros2_ws/src/morec/setup.py ros2_ws/src/morec_ros/setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e ros2_ws/src/morec -e ros2_ws/src/morec_ros
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q tests

demo: setup
	$(VENV)/bin/morec_demo

BENCH_STAMP := $(VENV)/.bench-installed

# Bench-only extras (the pytorch-mppi peer), kept out of requirements.txt.
$(BENCH_STAMP): requirements-bench.txt $(STAMP)
	$(PY) -m pip install --quiet -r requirements-bench.txt
	touch $(BENCH_STAMP)

# Every figure in the README, results under artifacts/bench/ (hours on 2 cores): planner speed (minutes),
# the gap monitor (minutes), the closed loop over ROS 2 in lockstep and in real time (about 1.5 hours),
# the dynamics-reward benchmark and its ablations (about two hours).
bench: setup $(BENCH_STAMP)
	$(PY) bench/planner_speed.py
	$(VENV)/bin/morec monitor --bundle models/halfcheetah --task halfcheetah \
	  --policy models/behavior/halfcheetah/sac_50000.zip --variants real heavy slippery weak noisy delayed \
	  --episodes 10 --steps 1000 --window 50 --out artifacts/bench/monitor/halfcheetah.json
	$(PY) bench/closed_loop.py
	$(PY) bench/closed_loop.py --mode realtime --variants nominal --only "filtered MPC + prior" \
	  "unfiltered MPC + prior" "behaviour policy" "filtered MPC + prior, uncompensated" \
	  "filtered MPC + prior, 300 samples" "filtered MPC + prior, 300 samples, uncompensated" \
	  "filtered MPC + prior, 50 samples"
	bash bench/reward_ablation.sh

clean-venv:
	rm -rf $(VENV)
