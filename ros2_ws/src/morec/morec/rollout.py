"""The filtered rollout engine: predict candidates, score them, select one, terminate untrusted steps.

This is the one place where that happens; planners and policy learning call it. It works on numpy
batches and talks to two small backend interfaces, so the same engine runs on torch modules or on
ONNX Runtime sessions of the exported graphs (runtime.py) and gives the same numbers; the torch
backends live beside their models (ensemble.TorchDynamics, dynamics_reward.TorchReward), so a robot-side
process that only runs ONNX never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

MODES = ("filter", "random_elite", "elite_mean")


class DynamicsBackend(Protocol):
    obs_dim: int
    act_dim: int
    elites: np.ndarray

    def predict(self, obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of (s', r) for every member: [members, B, S+1] each."""


class RewardBackend(Protocol):
    def score(self, obs: np.ndarray, act: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """r_D of candidates [B, C, S] for their (s, a): [B, C]."""


@dataclass
class FilterConfig:
    mode: str = "filter"
    samples_per_elite: int = 2
    include_means: bool = False  # also offer each elite's mean as a candidate
    selection: str = "argmax"  # or "softmax": sample with probabilities softmax(r_D / temperature)
    temperature: float = 0.1
    threshold: float = 0.6  # a chosen candidate scoring below this ends the rollout
    clip: float | None = 25.0  # candidates are clipped to +-clip (the MuJoCo tasks' convention)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.selection not in ("argmax", "softmax"):
            raise ValueError(f"selection must be 'argmax' or 'softmax', got {self.selection!r}")


@dataclass
class Step:
    next_obs: np.ndarray  # [B, S]
    reward: np.ndarray  # [B] model reward of the chosen candidate
    terminal: np.ndarray  # [B] bool: task termination or, when filtering, an untrusted transition
    score: np.ndarray  # [B] r_D of the chosen candidate (nan when unfiltered without a reward model)
    disagreement: np.ndarray  # [B] max over members of ||std|| (the MOPO uncertainty)
    expected_obs: np.ndarray  # [B, S] the elites' mean prediction, what one-step errors are measured against


def member_disagreement(std: np.ndarray, obs_dim: int) -> np.ndarray:
    """MOPO's uncertainty: the largest norm over members of the next-state std, [members, B, S+1] -> [B]."""
    return np.linalg.norm(std[..., :obs_dim], axis=-1).max(axis=0)


class FilteredDynamics:
    def __init__(self, dynamics: DynamicsBackend, reward: RewardBackend | None = None,
                 cfg: FilterConfig = FilterConfig(),
                 is_terminal: Callable[[np.ndarray], np.ndarray] | None = None):
        if cfg.mode == "filter" and reward is None:
            raise ValueError("filter mode needs a dynamics reward model")
        self.dynamics, self.reward, self.cfg, self.is_terminal = dynamics, reward, cfg, is_terminal
        self.obs_dim = dynamics.obs_dim

    def candidates(self, obs: np.ndarray, act: np.ndarray, rng: np.random.Generator):
        """Candidate (s', r) [B, C, S+1] drawn from the elites, their mean prediction [B, S+1] and the
        member stds [members, B, S+1]: one ensemble call gives all three."""
        mean, std = self.dynamics.predict(obs, act)
        mu, sd = mean[self.dynamics.elites], std[self.dynamics.elites]  # [E, B, S+1]
        k = self.cfg.samples_per_elite
        eps = rng.standard_normal((len(mu), k, *mu.shape[1:]), dtype=np.float32)
        draws = mu[:, None] + sd[:, None] * eps  # [E, k, B, S+1]
        cands = draws.reshape(-1, *mu.shape[1:])
        if self.cfg.include_means:
            cands = np.concatenate([cands, mu])
        cands = np.ascontiguousarray(cands.transpose(1, 0, 2))  # [B, C, S+1]
        return self._clip(cands), self._clip(mu.mean(axis=0)), std

    def _clip(self, x: np.ndarray) -> np.ndarray:
        """Clip a freshly computed array in place."""
        return x if self.cfg.clip is None else np.clip(x, -self.cfg.clip, self.cfg.clip, out=x)

    def step(self, obs: np.ndarray, act: np.ndarray, rng: np.random.Generator) -> Step:
        obs = np.asarray(obs, np.float32)
        act = np.asarray(act, np.float32)
        b = len(obs)
        rows = np.arange(b)
        if self.cfg.mode == "filter":
            cands, expected, std = self.candidates(obs, act, rng)
            scores = self.reward.score(obs, act, cands[..., : self.obs_dim])
            pick = self._select(scores, rng)
            chosen, score = cands[rows, pick], scores[rows, pick]
            untrusted = score < self.cfg.threshold
        else:
            mean, std = self.dynamics.predict(obs, act)
            elites = self.dynamics.elites
            expected = self._clip(mean[elites].mean(axis=0))
            if self.cfg.mode == "elite_mean":
                chosen = expected
            else:
                who = elites[rng.integers(0, len(elites), b)]
                eps = rng.standard_normal(mean.shape[1:], dtype=np.float32)
                chosen = self._clip(mean[who, rows] + std[who, rows] * eps)
            score = (self.reward.score(obs, act, chosen[:, None, : self.obs_dim])[:, 0]
                     if self.reward is not None else np.full(b, np.nan, np.float32))
            untrusted = np.zeros(b, dtype=bool)
        next_obs = chosen[:, : self.obs_dim]
        terminal = untrusted | (self.is_terminal(next_obs) if self.is_terminal else False)
        disagreement = member_disagreement(std, self.obs_dim)
        return Step(next_obs, chosen[:, self.obs_dim], terminal, score, disagreement, expected[:, : self.obs_dim])

    def _select(self, scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.cfg.selection == "argmax":
            return scores.argmax(axis=1)
        logits = scores / self.cfg.temperature
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        u = rng.random((len(scores), 1))
        return np.minimum((p.cumsum(axis=1) < u).sum(axis=1), scores.shape[1] - 1)

    def rollout(self, obs: np.ndarray, actions: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Open-loop rollout of action sequences [H, B, A] from obs [B, S]; arrays stacked over time.

        `alive` [H, B] is False from the step after a terminal transition on: callers decide whether to
        use what comes after (error curves do, returns must not).
        """
        alive = np.ones(len(obs), dtype=bool)
        out = {k: [] for k in ("next_obs", "reward", "terminal", "score", "disagreement", "alive")}
        for act in actions:
            step = self.step(obs, act, rng)
            out["alive"].append(alive.copy())
            for key in ("next_obs", "reward", "terminal", "score", "disagreement"):
                out[key].append(getattr(step, key))
            alive &= ~step.terminal
            obs = step.next_obs
        return {k: np.stack(v) for k, v in out.items()}
