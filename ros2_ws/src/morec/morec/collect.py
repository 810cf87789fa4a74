"""Roll a behaviour policy out in a Gymnasium MuJoCo task and record the transitions as a Dataset.

Levels follow D4RL: `random` (uniform actions), `medium` (a SAC checkpoint at about a third of the
expert return), `expert` (the best checkpoint), `medium-replay` (the replay buffer of the medium
checkpoint's training run), `medium-expert` (medium and expert data, half each). `sine` is none of
D4RL's: an open-loop periodic gait (SineGait), a policy no training set comes from, for evaluation.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .dataset import Dataset
from .simulator import SimulatedRobot
from .task_spec import TaskSpec

LEVELS = ("random", "medium", "expert", "medium-replay", "medium-expert", "sine")


class SineGait:
    """Open-loop periodic gait: a_j(t) = c_j + amplitude * h_j * sin(2 pi f t + phase_j), clipped to the
    actuator limits (c, h: their centre and half range; t: steps x control period).

    Each environment (row of the batch) gets its own amplitude, frequency and per-actuator phases, drawn
    once from the seed. Called once per step for all environments, as `rollout_dataset` does; time runs
    on across episode resets (the gait ignores the state).
    """

    def __init__(self, task: TaskSpec, seed: int, amplitude=(0.3, 1.0), frequency_hz=(0.5, 3.0)):
        self.low, self.high, self.dt = task.action_low, task.action_high, task.control_period
        self.rng, self.amplitude, self.frequency_hz = np.random.default_rng(seed), amplitude, frequency_hz
        self.params, self.step = None, 0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if self.params is None:
            n, dims = len(obs), len(self.low)
            self.params = (self.rng.uniform(*self.amplitude, (n, 1)), self.rng.uniform(*self.frequency_hz, (n, 1)),
                           self.rng.uniform(0.0, 2 * np.pi, (n, dims)))
        amplitude, frequency, phase = self.params
        t, self.step = self.step * self.dt, self.step + 1
        centre, half = (self.high + self.low) / 2, (self.high - self.low) / 2
        wave = np.sin(2 * np.pi * frequency * t + phase)
        return np.clip(centre + amplitude * half * wave, self.low, self.high).astype(np.float32)


def rollout_dataset(task: TaskSpec, policy, n_steps: int, seed: int, policy_name: str,
                    progress: bool = True, n_envs: int = 8, variant: str = "nominal") -> Dataset:
    """Collect `n_steps` transitions from `n_envs` environments stepped side by side.

    `policy(obs [n, S]) -> actions [n, A]` is called once per step for all environments (batching
    is what makes collection fast), or None for uniform random actions. Each environment's
    transitions are kept together, so episodes stay contiguous in the data set. `variant` names a
    robot variant of the task spec; only its physics applies (`TaskSpec.make_env`), not its sensor
    noise or actuation delay.
    """
    envs = [task.make_env(variant) for _ in range(n_envs)]
    names = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
    per_env = [{k: [] for k in names} for _ in envs]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    for i, env in enumerate(envs):
        env.action_space.seed(seed + i)
    returns, running = [], np.zeros(n_envs)
    bar = tqdm(total=n_steps, desc=f"collect {task.env_id} {policy_name}", disable=not progress, mininterval=2)
    collected = 0
    while collected < n_steps:
        actions = np.stack([e.action_space.sample() for e in envs]) if policy is None else policy(obs)
        for i, env in enumerate(envs[: n_steps - collected]):
            next_obs, reward, terminated, truncated, _ = env.step(actions[i])
            # Copies: obs is updated in place below, and actions may be a view the policy reuses.
            for key, value in zip(names, (obs[i].copy(), np.array(actions[i]), reward, next_obs, terminated,
                                          truncated and not terminated)):
                per_env[i][key].append(value)
            running[i] += reward
            if terminated or truncated:
                returns.append(running[i])
                running[i] = 0.0
                next_obs, _ = env.reset()
            obs[i] = next_obs
            collected += 1
        bar.update(min(n_envs, bar.total - bar.n))
    bar.close()
    for env in envs:
        env.close()
    for rec in per_env:  # every environment's last, cut episode
        if rec["terminals"]:
            rec["timeouts"][-1] = not rec["terminals"][-1]
    arrays = {k: np.concatenate([np.asarray(rec[k]) for rec in per_env if rec[k]]) for k in names}
    meta = {"env_id": task.env_id, "policy": policy_name, "variant": variant, "seed": seed,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "completed_episodes": len(returns),
            "policy_return_mean": float(np.mean(returns)) if returns else None,
            "gymnasium_version": _gym_version()}
    return Dataset(**arrays, metadata=meta)


def robot_episodes(task: TaskSpec, variant: str, policy, episodes: int, steps: int, seed: int
                   ) -> list[dict[str, np.ndarray]]:
    """Transitions {obs, act, next_obs} of whole episodes on the simulated robot, one dict per episode.

    Unlike `rollout_dataset` this drives SimulatedRobot, the sim node's robot: the variant's physics,
    sensor noise and actuation delay apply, and observations come from joint states as the ROS nodes
    see them. `policy(obs [1, S]) -> [1, A]`, or None for uniform random actions.
    """
    robot = SimulatedRobot(task, task.variant(variant), seed, episode_length=steps)
    rng = np.random.default_rng(seed)

    def observe() -> np.ndarray:
        position, velocity, _ = robot.joint_state()
        return task.observation_from_joint_state(task.joints, position, velocity).astype(np.float32)

    out = []
    for episode in range(episodes):
        if episode:
            robot.reset()
        rec = {"obs": [], "act": [], "next_obs": []}
        obs = observe()
        while not robot.done:
            act = rng.uniform(task.action_low, task.action_high) if policy is None else policy(obs[None])[0]
            robot.step(act)
            next_obs = observe()
            for key, value in zip(rec, (obs, act, next_obs)):
                rec[key].append(value)
            obs = next_obs
        out.append({k: np.asarray(v, np.float32) for k, v in rec.items()})
    robot.close()
    return out


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
