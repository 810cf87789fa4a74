"""Behaviour policies: SAC from stable-baselines3, checkpointed with their measured average return.

`train_sac` writes, under `out_dir`, one `sac_<steps>.zip` per checkpoint (plus the replay buffer of
the checkpoint chosen as `medium`, for medium-replay data) and `checkpoints.json` with each checkpoint's
average return, so `morec collect` can pick "medium" (about a third of expert return) or "expert".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .fileio import atomic_path, write_json
from .task_spec import TaskSpec


@dataclass
class SACConfig:
    total_steps: int = 300_000
    checkpoint_every: int = 25_000
    eval_episodes: int = 5
    learning_starts: int = 10_000
    seed: int = 0
    #: Keep every checkpoint's replay buffer up to this many steps (medium-replay data comes from one).
    save_replay_up_to: int = 300_000

    def __post_init__(self):
        if self.total_steps < 1 or self.checkpoint_every < 1:
            raise ValueError(f"total_steps and checkpoint_every must be at least 1, got {self.total_steps} and "
                             f"{self.checkpoint_every}")


def evaluate_policy(policy, task: TaskSpec, episodes: int, seed: int) -> tuple[float, float]:
    """Average and standard deviation of the undiscounted return over `episodes` deterministic episodes."""
    env = task.make_env()
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        done, total = False, 0.0
        while not done:
            action, _ = policy.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns)), float(np.std(returns))


def train_sac(task: TaskSpec, out_dir: str | Path, cfg: SACConfig) -> list[dict]:
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    torch.set_num_threads(1)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "checkpoints.json"
    records: list[dict] = []

    class Checkpoint(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % cfg.checkpoint_every:
                return True
            name = f"sac_{self.num_timesteps}"
            with atomic_path(out_dir / f"{name}.zip", suffix=".zip") as tmp:
                self.model.save(tmp)
            mean, std = evaluate_policy(self.model, task, cfg.eval_episodes, seed=10_000)
            record = {"steps": self.num_timesteps, "policy": f"{name}.zip", "return_mean": mean, "return_std": std}
            if self.num_timesteps <= cfg.save_replay_up_to:
                with atomic_path(out_dir / f"{name}_replay.pkl", suffix=".pkl") as tmp:
                    self.model.save_replay_buffer(tmp)
                record["replay_buffer"] = f"{name}_replay.pkl"
            records.append(record)
            write_json(log_path, {"task": task.env_id, "algo": "SAC", "config": asdict(cfg), "checkpoints": records})
            print(f"[behavior] {task.env_id} step {self.num_timesteps}: return {mean:.1f} +- {std:.1f}", flush=True)
            return True

    env = task.make_env()
    model = SAC("MlpPolicy", env, seed=cfg.seed, learning_starts=cfg.learning_starts, verbose=0, device="cpu")
    model.learn(total_timesteps=cfg.total_steps, callback=Checkpoint())
    return records


def load_checkpoints(behavior_dir: str | Path) -> dict:
    path = Path(behavior_dir) / "checkpoints.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: train behaviour policies first with `morec behavior train`")
    return json.loads(path.read_text())


def pick_checkpoint(behavior_dir: str | Path, level: str, expert_return: float | None = None) -> dict:
    """Choose a checkpoint: `expert` is the best one; `medium` the one closest to a third of the expert return.

    `expert_return` defaults to the best checkpoint's return (the D4RL convention is a third of *the* expert).
    """
    records = load_checkpoints(behavior_dir)["checkpoints"]
    best = max(records, key=lambda r: r["return_mean"])
    if level == "expert":
        return best
    if level == "medium":
        target = (expert_return if expert_return is not None else best["return_mean"]) / 3.0
        return min(records, key=lambda r: abs(r["return_mean"] - target))
    raise ValueError(f"unknown behaviour level {level!r} (expected 'medium' or 'expert')")


def load_policy(path: str | Path):
    from stable_baselines3 import SAC

    return SAC.load(path, device="cpu")


POLICY_FORMS = "'random', 'sine', PATH.zip (SAC, stochastic), PATH.zip:deterministic or PATH.onnx"


def policy_from_spec(spec: str, task: TaskSpec, seed: int = 0):
    """A policy `obs [n, S] -> actions [n, A]` from its description, for rollouts on the robot: 'random'
    (None: uniform random actions), 'sine' (an open-loop gait, collect.SineGait), a SAC checkpoint PATH.zip
    (sampling its actions, as when it collected data; seed torch for repeatable samples) or
    PATH.zip:deterministic (its mean action), or an exported ONNX policy PATH.onnx."""
    if spec == "random":
        return None
    if spec == "sine":
        from .collect import SineGait

        return SineGait(task, seed)
    deterministic = spec.endswith(":deterministic")
    path = spec.removesuffix(":deterministic")
    if Path(path).suffix not in (".zip", ".onnx") or (deterministic and path.endswith(".onnx")):
        raise ValueError(f"policy {spec!r}: expected {POLICY_FORMS}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"policy {path} not found")
    if path.endswith(".onnx"):
        from .runtime import OnnxPolicy

        return OnnxPolicy(path, task, "cpu", 1)
    sac = load_policy(path)
    return lambda obs: sac.predict(obs, deterministic=deterministic)[0]
