"""Roll a behaviour policy out in a Gymnasium MuJoCo task and record the transitions as a Dataset.

Levels follow D4RL: `random` (uniform actions), `medium` (a SAC checkpoint at about a third of the
expert return), `expert` (the best checkpoint), `medium-replay` (the replay buffer of the medium
checkpoint's training run), `medium-expert` (medium and expert data, half each).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .dataset import Dataset
from .task_spec import TaskSpec

LEVELS = ("random", "medium", "expert", "medium-replay", "medium-expert")


def rollout_dataset(task: TaskSpec, policy, n_steps: int, seed: int, policy_name: str,
                    progress: bool = True) -> Dataset:
    """Collect `n_steps` transitions; `policy(obs) -> action`, or None for uniform random actions."""
    env = task.make_env()
    env.action_space.seed(seed)
    arrays = {k: [] for k in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")}
    obs, _ = env.reset(seed=seed)
    episode_return, returns = 0.0, []
    for _ in tqdm(range(n_steps), desc=f"collect {task.env_id} {policy_name}", disable=not progress, mininterval=2):
        action = env.action_space.sample() if policy is None else policy(obs)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for key, value in zip(arrays, (obs, action, reward, next_obs, terminated, truncated and not terminated)):
            arrays[key].append(value)
        episode_return += float(reward)
        if terminated or truncated:
            returns.append(episode_return)
            episode_return = 0.0
            obs, _ = env.reset()
        else:
            obs = next_obs
    env.close()
    arrays["timeouts"][-1] = not arrays["terminals"][-1]  # the last, cut episode
    meta = {"env_id": task.env_id, "policy": policy_name, "seed": seed, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "completed_episodes": len(returns),
            "policy_return_mean": float(np.mean(returns)) if returns else None,
            "gymnasium_version": _gym_version()}
    return Dataset(**{k: np.asarray(v) for k, v in arrays.items()}, metadata=meta)


def replay_buffer_dataset(task: TaskSpec, replay_path: str | Path, policy_name: str) -> Dataset:
    """Turn a stable-baselines3 replay buffer (saved by `morec behavior train`) into a Dataset."""
    from stable_baselines3.common.save_util import load_from_pkl

    buf = load_from_pkl(replay_path)
    n = buf.buffer_size if buf.full else buf.pos
    if buf.n_envs != 1:
        raise ValueError(f"{replay_path}: expected a single-env replay buffer, got {buf.n_envs} envs")
    timeouts = buf.timeouts[:n, 0].astype(bool)
    terminals = buf.dones[:n, 0].astype(bool) & ~timeouts
    # SB3 stores a reset's first observation in the next slot, so episode boundaries are where done is set.
    # SB3 stores SAC actions rescaled to [-1, 1]; map them back to the environment's action bounds.
    space = task.make_env().action_space
    actions = space.low + (buf.actions[:n, 0] + 1.0) * 0.5 * (space.high - space.low)
    meta = {"env_id": task.env_id, "policy": policy_name, "source": "sac replay buffer",
            "gymnasium_version": _gym_version()}
    return Dataset(observations=buf.observations[:n, 0], actions=actions, rewards=buf.rewards[:n, 0],
                   next_observations=buf.next_observations[:n, 0], terminals=terminals, timeouts=timeouts,
                   metadata=meta)


def _gym_version() -> str:
    import gymnasium

    return gymnasium.__version__
