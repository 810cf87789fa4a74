# morec-stack: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench bench-offline clean-venv cpu-runtime

setup: $(STAMP)

# `make setup GPU=1`: onnxruntime-gpu (requirements-gpu.txt) in place of onnxruntime. The choice stays with the
# venv (its stamp file) for later targets until `make setup GPU=0`.
GPU_STAMP := $(VENV)/.gpu-installed
GPU ?= $(if $(wildcard $(GPU_STAMP)),1,0)
ifeq ($(GPU),1)
setup: $(GPU_STAMP)
else ifneq ($(wildcard $(GPU_STAMP)),)
setup: cpu-runtime
endif

# Both wheels write the `onnxruntime` module: the other one goes first, and a forced reinstall rewrites files the
# other may have overwritten (requirements.txt reinstalls onnxruntime whenever $(STAMP) is remade).
$(GPU_STAMP): requirements-gpu.txt $(STAMP)
	$(PY) -m pip uninstall --quiet --yes onnxruntime
	$(PY) -m pip install --quiet --force-reinstall --no-deps -r requirements-gpu.txt
	touch $(GPU_STAMP)

cpu-runtime: $(STAMP)
	$(PY) -m pip uninstall --quiet --yes onnxruntime-gpu
	$(PY) -m pip install --quiet --force-reinstall --no-deps "$$(grep '^onnxruntime==' requirements.txt)"
	rm -f $(GPU_STAMP)

# Re-installs only when the pinned requirements or package metadata change.
$(STAMP): requirements.txt ros2_ws/src/morec/setup.py ros2_ws/src/morec_ros/setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e ros2_ws/src/morec -e ros2_ws/src/morec_ros
	touch $(STAMP)

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q tests

demo: setup
	$(VENV)/bin/morec_demo

BENCH_STAMP := $(VENV)/.bench-installed

# Bench-only extras (the pytorch-mppi peer), kept out of requirements.txt.
$(BENCH_STAMP): requirements-bench.txt $(STAMP)
	$(PY) -m pip install --quiet -r requirements-bench.txt
	touch $(BENCH_STAMP)

# Every figure in docs/results.md, results under artifacts/bench/ (hours on 2 cores): planner speed (minutes),
# the gap monitor (minutes), the closed loop over ROS 2 in lockstep and in real time (about 1.5 hours),
# the dynamics-reward benchmark and its ablations (about two hours).
bench: setup $(BENCH_STAMP)
	$(PY) bench/planner_speed.py
	$(VENV)/bin/morec monitor --bundle models/halfcheetah --task halfcheetah \
	  --policies models/behavior/halfcheetah/sac_50000.zip models/behavior/halfcheetah/sac_50000.zip:deterministic \
	  --unseen-policies models/behavior/halfcheetah/sac_125000.zip:deterministic models/halfcheetah/policy.onnx \
	  --variants real heavy slippery weak noisy delayed \
	  --episodes 10 --steps 1000 --window 50 --out docs/results/monitor_policies_halfcheetah.json
	$(PY) bench/closed_loop.py
	$(PY) bench/closed_loop.py --mode realtime --variants nominal --only "filtered MPC + prior" \
	  "elite-mean MPC + prior" "behaviour policy" "filtered MPC + prior, uncompensated" \
	  "filtered MPC + prior, 300 samples" "filtered MPC + prior, 300 samples, uncompensated" \
	  "filtered MPC + prior, 50 samples"
	bash bench/reward_ablation.sh

# The offline-RL benchmark (the table in docs/results.md): data, the model-based grid (MOPO / MOBILE +- MOREC;
# about 40 min per 100k-step cell on 2 busy cores, resumable: finished cells are skipped), the d3rlpy baselines
# in their own venv, the SAC update speed, the filter along policy rollouts, and the table with its curves.
bench-offline: setup
	bash bench/task_data.sh halfcheetah
	$(PY) bench/sac_speed.py
	$(PY) bench/offline_grid.py --datasets halfcheetah-medium \
	  --methods morec-mopo mopo mopo-disagreement-end mobile morec-mobile --seeds 0 1 2
	$(PY) bench/offline_grid.py --datasets halfcheetah-medium \
	  --methods mopo-true-dynamics sensitivity/mopo-disagreement-end-q999 --seeds 0
	$(PY) bench/offline_grid.py --datasets halfcheetah-medium --methods sensitivity/mopo-disagreement-end-q95 \
	  --seeds 0 1 2
	bash bench/task_data.sh hopper
	$(PY) bench/offline_grid.py --datasets hopper-medium --methods mopo morec-mopo morec-mopo-q05 mopo-disagreement-end \
	  --seeds 0 1 2
	bash bench/task_data.sh walker2d
	$(PY) bench/offline_grid.py --datasets walker2d-medium --methods mopo morec-mopo mopo-disagreement-end --seeds 0 1 2
	bash bench/offline_reward_experiment.sh
	bash bench/d3rlpy_setup.sh
	for seed in 0 1 2; do for algo in bc td3bc iql; do .venv-d3rlpy/bin/python bench/d3rlpy_baselines.py \
	  --algo $$algo --task halfcheetah --data artifacts/bench/halfcheetah/medium.npz --dataset-name medium \
	  --seed $$seed --steps 100000 --out docs/results/offline/halfcheetah-medium/$${algo}_seed$$seed.json; done; done
	for seed in 0 1 2; do for algo in td3bc iql; do .venv-d3rlpy/bin/python bench/d3rlpy_baselines.py \
	  --algo $$algo --task hopper --data artifacts/bench/hopper/medium.npz --dataset-name medium \
	  --seed $$seed --steps 100000 --out docs/results/offline/hopper-medium/$${algo}_seed$$seed.json; done; done
	for seed in 0 1 2; do for algo in td3bc iql; do .venv-d3rlpy/bin/python bench/d3rlpy_baselines.py \
	  --algo $$algo --task walker2d --data artifacts/bench/walker2d/medium.npz --dataset-name medium \
	  --seed $$seed --steps 100000 --out docs/results/offline/walker2d-medium/$${algo}_seed$$seed.json; done; done
	for seed in 0 1 2; do .venv-d3rlpy/bin/python bench/d3rlpy_baselines.py --algo cql --task halfcheetah \
	  --data artifacts/bench/halfcheetah/medium.npz --dataset-name medium --seed $$seed --steps 10000 --eval-every 2000 \
	  --note "reduced budget: about 4-6 steps/s on one CPU thread" \
	  --out docs/results/offline/halfcheetah-medium/cql_seed$$seed.json; done
	$(PY) bench/filter_along_policy_rollouts.py --policy artifacts/offline/halfcheetah-medium/morec-mopo_seed0/policy.onnx
	for task in hopper walker2d; do for method in mopo morec-mopo mopo-disagreement-end; do \
	  $(PY) bench/filter_along_policy_rollouts.py --policy artifacts/offline/$$task-medium/$${method}_seed0/policy.onnx \
	  --bundle models/$$task --data artifacts/bench/$$task/medium.npz \
	  --out docs/results/offline/$$task-medium/filter_along_rollouts_$${method}_seed0.json; done; done
	$(PY) bench/offline_table.py

clean-venv:
	rm -rf $(VENV)
