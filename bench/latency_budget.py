"""What planning latency costs the controller: the shipped MPC on the simulated robot, on a virtual clock.

    .venv/bin/python bench/latency_budget.py [--task halfcheetah] [--seeds 0 1] [--latencies-ms 1 25 40 ...]
                                             [--spread 2.5] [--leads off 0 1] [--tick-phases 0.5]
                                             [--steps 1000] [--set name=value ...]

Each run is one episode of morec_ros.virtual_time: the controller the task's params files describe
(launch/params/stack.yaml, then launch/params/tasks/<task>.yaml, then --set) plans for real, but each plan
is taken to need a latency drawn with the given median and a 99th percentile `spread` times it (1 for a
fixed latency). Each lead is a latency compensation setting: `off`, or on with at least that many periods of
lead (`min_lead`); each row pools the seeds and the controller timer's phases against the robot's steps
(`--tick-phases`, in periods). Nothing else a loaded machine does (a late sim tick,
a busy executor) is in it, so the return against the median latency says what the planner's own speed is
worth, and the gap to `bench/closed_loop.py --mode realtime` says what the rest of the machine costs.
Prints a table and writes docs/results/latency_budget_<task>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "ros2_ws/src/morec"), str(ROOT / "ros2_ws/src/morec_ros")]

from morec.fileio import write_json  # noqa: E402
from morec.runner import config_dir, task_params  # noqa: E402
from morec.task_spec import load_task_spec  # noqa: E402
from morec_ros.control_loop import LoopConfig  # noqa: E402
from morec_ros.controller import Controller  # noqa: E402
from morec_ros.node_params import PLANNER_CONFIGS, ControllerParams  # noqa: E402
from morec_ros.parameters import params_from_files  # noqa: E402
from morec_ros.virtual_time import lognormal_latency, run_episode  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="halfcheetah")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--latencies-ms", type=float, nargs="+", default=[1, 25, 40, 50, 75])
    ap.add_argument("--spread", type=float, default=2.5, help="p99 / p50 of the plan latency (1: fixed)")
    ap.add_argument("--leads", nargs="+", default=["off", "0", "1"])
    ap.add_argument("--tick-phases", type=float, nargs="+", default=[0.5])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                    help="controller parameters over the task's (values read as YAML)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    task = load_task_spec(args.task)
    files = [f for f in (config_dir().parent / "params" / "stack.yaml", task_params(args.task)) if f]
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    p = params_from_files(ControllerParams, "morec_controller", files, overrides)
    settings = params_from_files(PLANNER_CONFIGS[p.planner], "morec_controller", files, overrides)
    rows = []
    for latency_ms in args.latencies_ms:
        for lead in args.leads:
            loop = LoopConfig(**{**p.loop.__dict__, "latency_compensation": lead != "off",
                                 "min_lead": 0 if lead == "off" else int(lead)})
            runs = []
            for phase in args.tick_phases:
                for seed in args.seeds:
                    controller = Controller(task, p, settings)  # a fresh planner per episode, as a restarted node
                    p99 = latency_ms * args.spread
                    draw = lognormal_latency(latency_ms / 1e3, p99 / 1e3, seed) if args.spread > 1 \
                        else (lambda _, s=latency_ms / 1e3: s)
                    start = time.perf_counter()
                    run = run_episode(task, controller.act, controller.predict, loop, draw, seed=seed,
                                      steps=args.steps, tick_phase=phase)
                    runs.append(run)
                    print(f"latency p50 {latency_ms:.0f} ms, lead {lead}, tick phase {phase}, seed {seed}: "
                          f"return {run.episode_return:.1f}, plans in time {run.in_time:.2f} "
                          f"({time.perf_counter() - start:.0f} s)", flush=True)
            returns = [r.episode_return for r in runs]
            rows.append({"latency_p50_ms": latency_ms, "latency_p99_ms": latency_ms * max(args.spread, 1.0),
                         "lead": lead, "tick_phases": args.tick_phases, "returns": returns,
                         "return_mean": float(np.mean(returns)), "return_std": float(np.std(returns)),
                         "in_time": float(np.mean([r.in_time for r in runs])),
                         "deadline_misses": float(np.mean([r.counts["deadline_misses"] / max(r.counts["plans"], 1)
                                                           for r in runs]))})
    print(f"\n{task.env_id}: {p.planner} {settings}, rollout {p.rollout}, prior {p.prior_policy or 'none'}")
    print("| plan latency p50 / p99 ms | lead (periods) | episodes | return | plans in time | plans over the period |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['latency_p50_ms']:.0f} / {r['latency_p99_ms']:.0f} | "
              f"{'off' if r['lead'] == 'off' else 'at least ' + r['lead']} | {len(r['returns'])} "
              f"| {r['return_mean']:.0f} ± {r['return_std']:.0f} | {r['in_time']:.2f} | {r['deadline_misses']:.2f} |")
    out = Path(args.out or ROOT / "docs" / "results" / f"latency_budget_{task.name}.json")
    write_json(out, {"task": task.env_id, "steps": args.steps, "seeds": args.seeds, "spread": args.spread,
                     "controller": {**p.__dict__, "loop": p.loop.__dict__}, "planner": settings.__dict__,
                     "command": " ".join(sys.argv), "rows": rows})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
