"""Closed-loop results over ROS 2: each controller configuration drives the simulated robot for whole episodes.

    .venv/bin/python bench/closed_loop.py [--seeds 0 1 2] [--variants nominal real] [--steps 1000] [--only NAME ...]
                                          [--mode lockstep|realtime] [--bundle DIR --tag NAME] [--one-process]

Every run is one `morec_demo` episode: sim, dynamics, filter, command guard and controller nodes as
separate processes over DDS. In lockstep (the default) the sim waits for each command, so the return is what the
controller earns at its settings whatever the machine's speed; the planner latency it reports is
measured all the same. In realtime the sim runs on the wall clock and the controller commands every
period from its latest plan while the planner thread works on the next: the return then also pays for
the planner's latency on this machine.
The configurations share the planner settings of launch/params/tasks/halfcheetah.yaml and differ in one
thing each: the filter, the prior (the behaviour policy, or the offline policy of `morec train-policy`), the
offline policy's critic as the plan's terminal value, or the model (the learned ensemble vs MuJoCo itself,
the upper bound); the behaviour policy alone is the data's own level, the offline policy alone what offline
RL made of the same data. Finished runs are kept under
artifacts/bench/closed_loop/ and skipped when the script runs again, so it can be stopped and resumed.
Prints a table and writes artifacts/bench/closed_loop/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from machine import cpu_model, usable_cores

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "artifacts" / "bench" / "closed_loop"
POLICY = "models/behavior/halfcheetah/sac_50000.onnx"  # the behaviour policy of the shipped bundle's data
# The shipped offline policy and its critic (bench/ship_offline_policy.sh, from `morec train-policy`).
OFFLINE_POLICY, OFFLINE_CRITIC = "models/halfcheetah/policy.onnx", "models/halfcheetah/critic.onnx"

# name -> controller parameter overrides on top of launch/params/tasks/halfcheetah.yaml
# (filtered MPPI around the prior).
CONFIGS = {
    "filtered MPC + prior": {"rollout": "filter"},
    "elite-mean MPC + prior": {"rollout": "elite_mean"},
    "MuJoCo MPC + prior": {"model": "mujoco"},
    "behaviour policy": {"mode": "policy", "policy": POLICY},
    "filtered MPC": {"rollout": "filter", "prior_policy": ""},
    "elite-mean MPC": {"rollout": "elite_mean", "prior_policy": ""},
    "offline policy": {"mode": "policy", "policy": OFFLINE_POLICY},
    "filtered MPC + offline prior": {"rollout": "filter", "prior_policy": OFFLINE_POLICY},
    "elite-mean MPC + offline prior": {"rollout": "elite_mean", "prior_policy": OFFLINE_POLICY},
    "filtered MPC + offline prior + value": {"rollout": "filter", "prior_policy": OFFLINE_POLICY,
                                             "terminal_value": OFFLINE_CRITIC},
    "elite-mean MPC + offline prior + value": {"rollout": "elite_mean", "prior_policy": OFFLINE_POLICY,
                                               "terminal_value": OFFLINE_CRITIC},
}
# Real time only (lockstep waits for every plan): latency compensation off; a planner three times
# slower than the period, with and without it; and one with half the samples, well within the period.
REALTIME_CONFIGS = {
    "filtered MPC + prior, uncompensated": {"rollout": "filter", "latency_compensation": False},
    "filtered MPC + prior, 300 samples": {"rollout": "filter", "samples": 300},
    "filtered MPC + prior, 300 samples, uncompensated": {"rollout": "filter", "samples": 300,
                                                         "latency_compensation": False},
    "filtered MPC + prior, 50 samples": {"rollout": "filter", "samples": 50},
    # Every plan one period ahead: nearly two periods per plan, from a predicted state.
    "elite-mean MPC + prior, one period ahead": {"rollout": "elite_mean", "min_lead": 1},
    "filtered MPC + prior, one period ahead": {"rollout": "filter", "min_lead": 1},
}
CONFIGS.update(REALTIME_CONFIGS)


def run_dir(out: Path, name: str, variant: str, seed: int) -> Path:
    return out / name.replace(",", "").replace(" ", "_").replace("+", "with") / f"{variant}_seed{seed}"


def run_one(out: Path, name: str, variant: str, seed: int, args, domain: int) -> dict | None:
    """One episode; its summary JSON (None when the demo failed: its output is kept in demo.log)."""
    out = run_dir(out, name, variant, seed)
    summary = out / f"halfcheetah_{variant}_{args.mode}{'_one_process' if args.one_process else ''}.json"
    load = out / "load.json"  # runs from before the load was recorded have none
    if summary.exists():
        return {**json.loads(summary.read_text()), **(json.loads(load.read_text()) if load.exists() else {})}
    out.mkdir(parents=True, exist_ok=True)
    # The machine's load as the run starts: real-time figures depend on what else runs on the cores.
    start_load = {"load_average_1min": os.getloadavg()[0]}
    load.write_text(json.dumps(start_load))
    # The seed varies the planner's sampling too, not only the robot's initial state; JSON is YAML ("" stays a string).
    overrides = [f"{k}={json.dumps(v)}" for k, v in {"seed": seed, **CONFIGS[name]}.items()]
    cmd = [str(Path(sys.executable).parent / "morec_demo"), "--task", "halfcheetah", "--steps", str(args.steps),
           "--variant", variant, "--seed", str(seed), "--domain-id", str(domain), "--out", str(out),
           "--mode", args.mode, "--timeout", "3600", *(["--bundle", str(args.bundle)] if args.bundle else []),
           *(["--one-process"] if args.one_process else []),
           *(["--controller", *overrides] if overrides else [])]
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST"))
    (out / "demo.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not summary.exists():
        print(f"  FAILED ({proc.returncode}); see {out / 'demo.log'}", flush=True)
        return None
    result = {**json.loads(summary.read_text()), **start_load}
    print(f"  return {result['episode_return']:.1f} over {result['steps']} steps, "
          f"p50 {result['control']['latency_p50_ms']:.0f} ms ({time.time() - start:.0f} s)", flush=True)
    return result


def aggregate(runs: list[dict]) -> dict:
    returns = np.array([r["episode_return"] for r in runs])
    scores = np.array([r["normalized_score"] for r in runs], dtype=float)
    monitor = [r.get("monitor", {}) for r in runs]
    return {"episodes": len(runs), "return_mean": float(returns.mean()), "return_std": float(returns.std()),
            "score_mean": float(scores.mean()), "score_std": float(scores.std()),
            "latency_p50_ms": float(np.median([r["control"]["latency_p50_ms"] for r in runs])),
            "latency_p99_ms": float(np.median([r["control"]["latency_p99_ms"] for r in runs])),
            "r_d_real_mean": float(np.nanmean([r["consistency"]["mean"] or np.nan for r in runs])),
            "monitor_warned": float(np.mean([m.get("warned", False) for m in monitor])),
            "monitor_first_warning": [m.get("first_warning_at_transition") for m in monitor],
            "monitor_signals": sorted({s for m in monitor for s in m.get("signals", [])}),
            "load_average_1min": [r.get("load_average_1min") for r in runs]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=["nominal", "real"])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--only", nargs="+", choices=list(CONFIGS), metavar="NAME", help="run only these configs")
    parser.add_argument("--mode", choices=("lockstep", "realtime"), default="lockstep")
    parser.add_argument("--bundle", type=Path, help="model bundle (default: the shipped models/halfcheetah)")
    parser.add_argument("--one-process", action="store_true",
                        help="the nodes in one morec_stack process (default: one process each)")
    parser.add_argument("--tag", default="", help="results go to artifacts/bench/closed_loop/<tag> (default: mode)")
    args = parser.parse_args()
    names = args.only or [n for n in CONFIGS if args.mode == "realtime" or n not in REALTIME_CONFIGS]
    out = OUT / (args.tag or ("" if args.mode == "lockstep" else args.mode))
    results, domain = {}, 150
    # Seed by seed, so that a stopped run still has every configuration on the first seeds.
    for seed in args.seeds:
        for variant in args.variants:
            for name in names:
                print(f"[closed_loop] {name}, {variant} robot, seed {seed}", flush=True)
                domain = 150 + (domain - 149) % 80  # a fresh DDS domain per run
                result = run_one(out, name, variant, seed, args, domain)
                if result is not None:
                    results.setdefault(name, {}).setdefault(variant, []).append(result)
    table = {name: {variant: aggregate(runs) for variant, runs in by_variant.items()}
             for name, by_variant in results.items()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"steps": args.steps, "seeds": args.seeds, "mode": args.mode,
                                                  "bundle": str(args.bundle or "models/halfcheetah"),
                                                  "one_process": args.one_process,
                                                  "machine": {"cpu": cpu_model(), "usable_cores": usable_cores()},
                                                  "configs": CONFIGS, "results": table}, indent=2))
    print("\n| controller | robot | episodes | return | D4RL score | planner p50 / p99 ms | r_D of real transitions "
          "| monitor warned |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, by_variant in table.items():
        for variant, a in by_variant.items():
            signals = f" ({', '.join(a['monitor_signals'])})" if a["monitor_signals"] else ""
            print(f"| {name} | {variant} | {a['episodes']} | {a['return_mean']:.0f} ± {a['return_std']:.0f} "
                  f"| {a['score_mean']:.1f} ± {a['score_std']:.1f} | {a['latency_p50_ms']:.0f} / "
                  f"{a['latency_p99_ms']:.0f} | {a['r_d_real_mean']:.3f} | {a['monitor_warned']:.0%}{signals} |")
    print(f"\nwrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
