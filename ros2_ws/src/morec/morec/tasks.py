"""Task registry: the MuJoCo tasks morec-stack knows, with D4RL score references and termination rules."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class Task:
    name: str
    env_id: str
    # D4RL normalisation: score = 100 * (return - random) / (expert - random); None where D4RL has none.
    random_return: float | None = None
    expert_return: float | None = None

    def make_env(self, **kwargs) -> gym.Env:
        return gym.make(self.env_id, **kwargs)

    def normalized_score(self, episode_return: float) -> float | None:
        if self.random_return is None or self.expert_return is None:
            return None
        return 100.0 * (episode_return - self.random_return) / (self.expert_return - self.random_return)

    def is_terminal(self, next_obs: np.ndarray) -> np.ndarray:
        """Task termination for a batch of next observations [..., S] (Gymnasium v5 rules, defaults)."""
        z = next_obs[..., 0]
        if self.name == "hopper":
            angle = next_obs[..., 1]
            healthy = (np.all(np.abs(next_obs[..., 1:]) < 100.0, axis=-1) & (z > 0.7) & (np.abs(angle) < 0.2))
            return ~healthy
        if self.name == "walker2d":
            angle = next_obs[..., 1]
            return ~((z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0))
        if self.name == "inverted_pendulum":
            return ~(np.all(np.isfinite(next_obs), axis=-1) & (np.abs(next_obs[..., 1]) <= 0.2))
        return np.zeros(next_obs.shape[:-1], dtype=bool)


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("halfcheetah", "HalfCheetah-v5", -280.178953, 12135.0),
        Task("hopper", "Hopper-v5", -20.272305, 3234.3),
        Task("walker2d", "Walker2d-v5", 1.629008, 4592.3),
        Task("inverted_pendulum", "InvertedPendulum-v5"),
    )
}


def get_task(name_or_env_id: str) -> Task:
    """Look a task up by short name ("halfcheetah") or Gymnasium id ("HalfCheetah-v5")."""
    for task in TASKS.values():
        if name_or_env_id in (task.name, task.env_id):
            return task
    known = ", ".join(f"{t.name} ({t.env_id})" for t in TASKS.values())
    raise KeyError(f"unknown task {name_or_env_id!r}; known tasks: {known}")
