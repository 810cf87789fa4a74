"""Where the filter stands on its own: along the rollouts that policy learning makes, does a low chosen r_D
flag the model's worst steps, and better than the ensemble's disagreement (MOPO's signal)?

    .venv/bin/python bench/filter_along_policy_rollouts.py \\
        --policy artifacts/offline/halfcheetah-medium/morec-mopo_seed0/policy.onnx \\
        [--bundle models/halfcheetah] [--data artifacts/bench/halfcheetah/medium.npz] [--starts 500] [--horizon 100]
        [--threshold 0.6] [--onnx]

A trained offline policy (its deterministic action) is rolled out through the filtered model from data states;
at every step MuJoCo, set to the model's state, gives the true next state. Positives: the steps whose error is
in the top quartile. Reports the AUROC of -r_D and of the disagreement, and both at r_D < threshold's termination
rate (diagnostics.termination_metrics), and the mean of each signal in each quarter of the error, with the
model states' distance from the data there (diagnostics.by_error_quartile). Writes JSON (default: beside the
policy, filter_along_rollouts.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from morec.dataset import Dataset
from morec.diagnostics import by_error_quartile, load_backends, policy_rollout, termination_metrics
from morec.fileio import write_json
from morec.mujoco_model import MujocoDynamics
from morec.rollout import FilterConfig, FilteredDynamics
from morec.runtime import OnnxPolicy
from morec.task_spec import load_task_spec

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", type=Path, required=True)
    p.add_argument("--bundle", type=Path, default=ROOT / "models" / "halfcheetah")
    p.add_argument("--data", type=Path, default=ROOT / "artifacts" / "bench" / "halfcheetah" / "medium.npz")
    p.add_argument("--starts", type=int, default=500)
    p.add_argument("--horizon", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threshold", type=float, default=FilterConfig.threshold,
                   help="r_D below this ends a rollout: the policy's run's own (its result's threshold_used)")
    p.add_argument("--onnx", action="store_true",
                   help="score with the bundle's exported graphs, as train-policy does (default: its torch "
                        "checkpoints where it has them, all snapshots)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    data = Dataset.load(args.data)
    task = load_task_spec(data.metadata["env_id"])
    dynamics, scorer, torch_reward = load_backends(args.bundle, onnx=args.onnx)
    model = FilteredDynamics(dynamics, scorer, FilterConfig(mode="filter", threshold=args.threshold), task.is_terminal)
    obs_scale = np.maximum(data.observations.std(0), 1e-6)
    starts = data.observations[np.random.default_rng(args.seed).integers(0, len(data), args.starts)]
    out, err = policy_rollout(model, MujocoDynamics(task), OnnxPolicy(args.policy, task, "cpu", 1), starts,
                              args.horizon, obs_scale, args.seed)
    report = {"policy": str(args.policy), "bundle": str(args.bundle), "data": str(args.data), "starts": args.starts,
              "horizon": args.horizon, "seed": args.seed, "threshold": args.threshold,
              "backend": "onnx" if torch_reward is None else "torch",
              "error_by_step": err.mean(1).tolist(),
              "trusted_by_step": (out["alive"] & ~out["terminal"]).mean(1).tolist(),
              "mean_rollout_length": float(out["alive"].sum(0).mean()),
              "termination": termination_metrics(out, err, model.cfg.threshold),
              "by_error_quartile": by_error_quartile(out, err, data.observations.mean(0), obs_scale)}
    write_json(args.out or args.policy.parent / "filter_along_rollouts.json", report)
    t = report["termination"]
    print(json.dumps({"auroc": t["auroc"], "auroc_within_step": t["auroc_within_step"], "rates": t["rates"],
                      "precision_at_r_D_rate": {k: v["r_D_below_threshold"]["precision"]
                                                for k, v in t["at_rate"].items()},
                      "mean_rollout_length": report["mean_rollout_length"],
                      "by_error_quartile": report["by_error_quartile"]}, indent=2))


if __name__ == "__main__":
    main()
