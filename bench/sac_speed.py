"""Gradient steps per second of the offline learner's SAC update against stable-baselines3's SAC.

    .venv/bin/python bench/sac_speed.py [--threads 1 2] [--steps 1000] [--out PATH]

Both update the same networks (actor and twin critics 256 x 256, HalfCheetah-v5's 17-d observations and
6-d actions) on batches of 256 with automatic entropy tuning, measured back to back in one run, so the ratio
holds on a loaded machine even when the absolute rates drift. The ideal rate from the update's FLOPs and the
measured matmul peak shows how close to the hardware each comes. Then MOBILE's penalty (10 samples x 5 elites
x 243 model rows through actor and target critics, most of a MOBILE step), in float32 and in bfloat16, with how
far the bfloat16 penalty lands from float32's. Writes artifacts/bench/sac_speed.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from morec.dataset import Dataset
from morec.fileio import write_json
from morec.offline_rl import OfflineRLConfig, OfflineTrainer, make_rollout_model
from morec.task_spec import load_task_spec

ROOT = Path(__file__).resolve().parents[1]
BATCH, HIDDEN = 256, (256, 256)


class NoDynamics:
    """Never called: the benchmark fills the model buffer itself."""

    elites = np.array([0])

    def __init__(self, obs_dim, act_dim):
        self.obs_dim, self.act_dim = obs_dim, act_dim


class NoisyDynamics(NoDynamics):
    """7 members, 5 elites: next state = state + N(0.1 k, 0.1) for member k (MOBILE's penalty needs a spread)."""

    elites = np.arange(5)

    def predict(self, obs, act):
        shift = 0.1 * np.arange(7, dtype=np.float32)[:, None, None]
        mean = np.concatenate([obs[None] + shift, np.zeros((7, len(obs), 1), np.float32)], -1)
        return mean, np.full_like(mean, 0.1)


def random_dataset(task, n: int, rng) -> Dataset:
    s, a = task.obs_dim, task.action_dim
    return Dataset(rng.standard_normal((n, s)), rng.uniform(-1, 1, (n, a)), rng.standard_normal(n),
                   rng.standard_normal((n, s)), np.zeros(n, bool), np.arange(n) % 1000 == 999, {"env_id": task.env_id})


def ours(task, data, steps: int, threads: int, out_dir: Path) -> float:
    cfg = OfflineRLConfig(morec=False, hidden=HIDDEN, batch_size=BATCH, threads=threads, rollout_batch=len(data),
                          rollout_horizon=1, retain_rounds=1)
    trainer = OfflineTrainer(task, data, make_rollout_model(NoDynamics(task.obs_dim, task.action_dim), None, cfg, task),
                             cfg, out_dir, progress=False)
    trainer.buffer.add(data.observations, data.actions, data.rewards, data.next_observations, data.terminals)
    for _ in range(20):
        trainer.update(trainer.sample_batch(), trainer.n_real)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.update(trainer.sample_batch(), trainer.n_real)
    return steps / (time.perf_counter() - start)


def stable_baselines3(task, data, steps: int, threads: int) -> float:
    from stable_baselines3 import SAC

    torch.set_num_threads(threads)
    env = task.make_env()
    sac = SAC("MlpPolicy", env, batch_size=BATCH, learning_starts=0, buffer_size=len(data), device="cpu",
              policy_kwargs={"net_arch": list(HIDDEN)}, seed=0)
    for i in range(len(data)):
        sac.replay_buffer.add(data.observations[i], data.next_observations[i], data.actions[i], data.rewards[i],
                              data.terminals[i], [{}])
    from stable_baselines3.common.logger import configure

    sac.set_logger(configure(None, []))
    sac.train(gradient_steps=20, batch_size=BATCH)
    start = time.perf_counter()
    sac.train(gradient_steps=steps, batch_size=BATCH)
    return steps / (time.perf_counter() - start)


def mobile_penalty(task, data, steps: int, threads: int, out_dir: Path) -> dict:
    """Milliseconds per penalty in float32 and bfloat16, and the bfloat16 penalty's mean relative difference."""
    cfg = OfflineRLConfig(backbone="mobile", morec=False, hidden=HIDDEN, batch_size=BATCH, threads=threads)
    model = make_rollout_model(NoisyDynamics(task.obs_dim, task.action_dim), None, cfg, task)
    trainer = OfflineTrainer(task, data, model, cfg, out_dir, progress=False)
    rows = BATCH - trainer.n_real
    obs, act = torch.as_tensor(data.observations[:rows]), torch.as_tensor(data.actions[:rows])
    out = {"rows": rows, "samples": cfg.mobile_samples, "elites": len(NoisyDynamics.elites),
           "bf16_native": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())}
    penalty = {}
    for name in ("fp32", "bf16"):
        trainer.mobile_bf16 = name == "bf16"
        with torch.no_grad():
            trainer.mobile_penalty(obs, act)
            start = time.perf_counter()
            for _ in range(steps):
                trainer.mobile_penalty(obs, act)
            out[f"{name}_ms"] = 1e3 * (time.perf_counter() - start) / steps
            trainer.rng = np.random.default_rng(0)
            torch.manual_seed(0)
            penalty[name] = trainer.mobile_penalty(obs, act).numpy()
    out["speedup"] = out["fp32_ms"] / out["bf16_ms"]
    out["bf16_mean_relative_difference"] = float(abs(penalty["bf16"].mean() / penalty["fp32"].mean() - 1))
    return out


def update_gflop(obs_dim: int, act_dim: int) -> float:
    """Multiply-adds x 2 of one SAC update: critic forward/backward, target, actor and its pass through Q."""
    critic = (obs_dim + act_dim) * HIDDEN[0] + HIDDEN[0] * HIDDEN[1] + HIDDEN[1]
    actor = obs_dim * HIDDEN[0] + HIDDEN[0] * HIDDEN[1] + HIDDEN[1] * 2 * act_dim
    per_row = 2 * critic * 3 + 2 * critic + actor + actor * 3 + 2 * critic * 2  # input grads only through Q
    return 2 * per_row * BATCH / 1e9


def matmul_gflops(threads: int, n: int = 1024) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(10):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / float(np.median(times)) / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--out", type=Path, default=ROOT / "artifacts" / "bench" / "sac_speed.json")
    args = p.parse_args()
    task = load_task_spec("halfcheetah")
    data = random_dataset(task, 20_000, np.random.default_rng(0))
    gflop = update_gflop(task.obs_dim, task.action_dim)
    rows = []
    print(f"{'threads':>7} {'ours steps/s':>13} {'SB3 steps/s':>12} {'ratio':>6} {'matmul GFLOP/s':>15} "
          f"{'ours % of peak':>15}")
    for threads in args.threads:
        peak = matmul_gflops(threads)
        mine = ours(task, data, args.steps, threads, args.out.parent / "sac_speed_run")
        sb3 = stable_baselines3(task, data, args.steps, threads)
        rows.append({"threads": threads, "ours_steps_per_s": mine, "sb3_steps_per_s": sb3, "ratio": mine / sb3,
                     "matmul_gflops": peak, "update_gflop": gflop, "ours_peak_fraction": mine * gflop / peak})
        print(f"{threads:>7} {mine:>13.1f} {sb3:>12.1f} {mine / sb3:>6.2f} {peak:>15.1f} "
              f"{100 * mine * gflop / peak:>14.0f}%", flush=True)
    print(f"\nMOBILE penalty (the model rows of a batch of {BATCH} x 5 elites x 10 samples)")
    print(f"{'threads':>7} {'float32 ms':>11} {'bfloat16 ms':>12} {'speed-up':>9} {'penalty difference':>19}")
    penalty_rows = []
    for threads in args.threads:
        row = {"threads": threads, **mobile_penalty(task, data, max(args.steps // 20, 10), threads,
                                                      args.out.parent / "sac_speed_run")}
        penalty_rows.append(row)
        print(f"{threads:>7} {row['fp32_ms']:>11.1f} {row['bf16_ms']:>12.1f} {row['speedup']:>8.2f}x "
              f"{100 * row['bf16_mean_relative_difference']:>18.2f}%", flush=True)
    if not penalty_rows or not penalty_rows[0]["bf16_native"]:
        print("(this CPU has no native bfloat16: mobile_precision 'auto' keeps float32 here)")
    write_json(args.out, {"batch": BATCH, "hidden": HIDDEN, "steps": args.steps, "rows": rows,
                          "mobile_penalty": penalty_rows})


if __name__ == "__main__":
    main()
