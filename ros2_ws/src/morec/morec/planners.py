"""Sampling MPC through the filtered model: MPPI and CEM.

Both planners sample action sequences around a mean plan, score them all with `evaluate` (one
batched FilteredDynamics.step per horizon step, so the filter's candidate selection and its
termination of untrusted transitions apply inside the plan), and move the mean towards the
sequences that scored well: MPPI by an exponentially weighted average (Williams et al. 2017), CEM
by refitting a Gaussian to the best few (Rubinstein 1999). The previous plan, shifted by the steps
that have passed, is the next call's starting mean. Actions are clipped to the actuator limits
before they are evaluated, so every plan respects them.

With a `prior` policy (typically the behaviour policy that made the training data, exported with
`morec export-policy`) the starting mean is instead the prior's own rollout through the same model,
as in MBOP (Argenson and Dulac-Arnold 2021): the search then stays near actions the data covers,
where the model is trustworthy, and improves on them rather than exploiting the model elsewhere.
The prior's rollout is the first row of the first iteration's batch, and the other sequences are
drawn around its actions as they appear, so a plan costs one model call per horizon step either way.

The plan's predicted states (`Plan.states`, what the controller publishes) are rolled out only when
asked for, so a controller sends its command first.

With a `terminal_value` V(s) (typically an offline-trained policy's critic, V(s) = Q(s, pi(s)), see
`policy_value`) every sequence still alive at the end of the horizon is credited with discount^H V(s_H),
so a short horizon still sees what comes after it (as TD-MPC and LOOP do).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np

from .rollout import FilteredDynamics
from .task_spec import TaskSpec

PLANNERS = ("mppi", "cem")


@dataclass
class PlannerConfig:
    samples: int = 400  # action sequences per iteration; the first is always the current mean
    horizon: int = 15
    iterations: int = 1
    noise_std: float = 0.5  # sampling std as a fraction of half the actuator range
    discount: float = 0.99
    termination_penalty: float = 0.0  # charged once at a terminal transition (task end or untrusted step)
    warm_start: bool = True  # start from the previous plan shifted by the elapsed steps
    seed: int = 0

    def __post_init__(self):
        if self.samples < 2 or self.horizon < 1 or self.iterations < 1:
            raise ValueError(f"need samples >= 2, horizon >= 1, iterations >= 1; got {self}")
        if not self.noise_std > 0 or not 0 < self.discount <= 1:
            raise ValueError(f"need noise_std > 0 and 0 < discount <= 1; got {self}")


@dataclass
class MPPIConfig(PlannerConfig):
    temperature: float = 1.0  # in return units: lower follows the best sequences more greedily

    def __post_init__(self):
        super().__post_init__()
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")


@dataclass
class CEMConfig(PlannerConfig):
    iterations: int = 4
    elite_fraction: float = 0.1  # share of the samples, the best ones, that the Gaussian is refitted to
    smoothing: float = 0.1  # share of the previous mean and std kept at each refit
    min_std: float = 0.05  # floor on the std (fraction of half the range), so the search never collapses

    def __post_init__(self):
        super().__post_init__()
        if self.elites < 2 or self.elite_fraction > 1 or not 0 <= self.smoothing < 1 or self.min_std < 0:
            raise ValueError(f"need at least 2 elites, elite_fraction <= 1, 0 <= smoothing < 1, min_std >= 0; "
                             f"got {self}")

    @property
    def elites(self) -> int:
        return round(self.elite_fraction * self.samples)


@dataclass
class Plan:
    actions: np.ndarray  # [H, A] the mean action sequence; actions[0] is for now
    value: float  # best discounted model return sampled in the last iteration
    predict: Callable[[], np.ndarray] = field(repr=False)  # the filtered model's rollout along `actions`

    @cached_property
    def states(self) -> np.ndarray:
        """[H, S] the filtered model's prediction along the plan, rolled out on first use."""
        return self.predict()


# (step t, the sequences' states [N, S]) -> their actions [N, A] for step t
ActionsAt = Callable[[int, np.ndarray], np.ndarray]


def evaluate(model: FilteredDynamics, task: TaskSpec, obs: np.ndarray, actions: np.ndarray | ActionsAt,
             rng: np.random.Generator, discount: float = 0.99, termination_penalty: float = 0.0,
             terminal_value: Callable[[np.ndarray], np.ndarray] | None = None,
             shape: tuple[int, int] | None = None) -> np.ndarray:
    """Discounted model return of action sequences [N, H, A] started from one observation [S]: [N].

    `actions` may instead be a function giving each step's actions from the states reached, with
    `shape` = (N, H). Each step adds the task reward r(s, a, s') of the filtered prediction. A
    terminal transition ends a sequence's return and costs `termination_penalty`; when the filter
    ended it (no candidate was trusted) its reward is not counted either, since the prediction it
    rests on is not believed. Sequences alive after the last step add discount^H terminal_value(s_H).
    """
    if callable(actions):
        n, horizon = shape
        actions_at = actions
    else:
        (n, horizon), steps = actions.shape[:2], np.asarray(actions, np.float32)
        actions_at = lambda t, _: steps[:, t]  # noqa: E731
    state = np.repeat(np.asarray(obs, np.float32)[None], n, axis=0)
    returns = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    weight = 1.0
    for t in range(horizon):
        act = np.ascontiguousarray(actions_at(t, state), dtype=np.float32)
        step = model.step(state, act, rng)
        task_end = task.is_terminal(step.next_obs)
        terminal = step.terminal | task_end
        reward = np.where(terminal & ~task_end, 0.0, task.reward(state, act, step.next_obs))
        returns += weight * alive * (reward - termination_penalty * terminal)
        alive &= ~terminal
        if not alive.any():
            break
        state = step.next_obs
        weight *= discount
    else:
        if terminal_value is not None:
            returns[alive] += weight * terminal_value(state[alive])
    return returns


def policy_value(critic: Callable[[np.ndarray, np.ndarray], np.ndarray],
                 policy: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """V(s) = Q(s, pi(s)): a critic and the policy it was trained with, as a planner's terminal value."""
    return lambda obs: critic(obs, policy(obs))


class SamplingPlanner:
    """Shared machinery: bounds, warm start, sampling, the final prediction along the plan."""

    def __init__(self, model: FilteredDynamics, task: TaskSpec, cfg: PlannerConfig,
                 prior: Callable[[np.ndarray], np.ndarray] | None = None,
                 terminal_value: Callable[[np.ndarray], np.ndarray] | None = None):
        if model.obs_dim != task.obs_dim:
            raise ValueError(f"model predicts {model.obs_dim}-dim states, task {task.name} has {task.obs_dim}")
        self.model, self.task, self.cfg, self.prior, self.terminal_value = model, task, cfg, prior, terminal_value
        self.low = task.action_low.astype(np.float32)
        self.high = task.action_high.astype(np.float32)
        self.center = (self.low + self.high) / 2
        self.half_range = (self.high - self.low) / 2
        self.rng = np.random.default_rng(cfg.seed)
        # The published prediction draws from its own stream: reading it or not leaves the plans unchanged.
        self.predict_rng = np.random.default_rng([cfg.seed, 1])
        self.reset()

    def reset(self) -> None:
        """Forget the previous plan (a new episode, or a state stream that restarted)."""
        self.mean = np.tile(self.center, (self.cfg.horizon, 1))

    def plan(self, obs: np.ndarray, elapsed: int = 1) -> Plan:
        """Plan from observation [S]; `elapsed` steps have been executed since the previous call."""
        obs = np.asarray(obs, np.float32)
        if self.prior is not None:
            self.mean = None  # the prior's rollout, found while the first samples are scored
        elif self.cfg.warm_start:
            k = min(max(elapsed, 0), self.cfg.horizon)
            self.mean = np.concatenate([self.mean[k:], np.tile(self.center, (k, 1))])
        else:
            self.reset()
        self.mean, value = self._optimize(obs, self.mean)
        mean = self.mean.copy()
        return Plan(actions=mean, value=value,
                    predict=lambda: self.model.rollout(obs[None], mean[:, None], self.predict_rng)["next_obs"][:, 0])

    def _sample_returns(self, obs: np.ndarray, mean: np.ndarray | None,
                        std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Clipped Gaussian sequences [N, H, A] around `mean` [H, A], the first being the mean itself, and
        their returns [N]. With no mean yet, the first sequence is the prior's own rollout and the others
        are drawn around its actions step by step, all in one batched rollout."""
        cfg = self.cfg
        eps = self.rng.standard_normal((cfg.samples, cfg.horizon, len(self.low)), dtype=np.float32)
        eps[0] = 0.0
        noise = std * eps
        if mean is not None:
            actions = np.clip(mean + noise, self.low, self.high)
            return actions, self._returns(obs, actions)
        # Steps after every sequence has ended keep the centre, as a shifted warm start's tail does.
        actions = np.broadcast_to(self.center, noise.shape).copy()

        def around_prior(t: int, states: np.ndarray) -> np.ndarray:
            prior = np.clip(self.prior(states[:1]), self.low, self.high)
            actions[:, t] = np.clip(prior + noise[:, t], self.low, self.high)
            return actions[:, t]

        return actions, self._returns(obs, around_prior)

    def _returns(self, obs: np.ndarray, actions: np.ndarray | ActionsAt) -> np.ndarray:
        return evaluate(self.model, self.task, obs, actions, self.rng, self.cfg.discount, self.cfg.termination_penalty,
                        self.terminal_value, shape=(self.cfg.samples, self.cfg.horizon))

    def _optimize(self, obs: np.ndarray, mean: np.ndarray | None) -> tuple[np.ndarray, float]:
        raise NotImplementedError


class MPPI(SamplingPlanner):
    cfg: MPPIConfig

    def _optimize(self, obs, mean):
        std = self.cfg.noise_std * self.half_range
        for _ in range(self.cfg.iterations):
            actions, returns = self._sample_returns(obs, mean, std)
            w = np.exp((returns - returns.max()) / self.cfg.temperature)
            # The weighted average of clipped sequences stays within the bounds.
            mean = np.tensordot(w / w.sum(), actions, axes=1).astype(np.float32)
        return mean, float(returns.max())


class CEM(SamplingPlanner):
    cfg: CEMConfig

    def _optimize(self, obs, mean):
        cfg = self.cfg
        std = np.tile(cfg.noise_std * self.half_range, (cfg.horizon, 1))
        for _ in range(cfg.iterations):
            actions, returns = self._sample_returns(obs, mean, std)
            elite = actions[np.argpartition(-returns, cfg.elites - 1)[: cfg.elites]]
            # actions[0] is the mean sampled around (on a first call with a prior, the prior's rollout).
            mean = cfg.smoothing * actions[0] + (1 - cfg.smoothing) * elite.mean(axis=0)
            std = np.maximum(cfg.smoothing * std + (1 - cfg.smoothing) * elite.std(axis=0),
                             cfg.min_std * self.half_range)
        return mean.astype(np.float32), float(returns.max())


def make_planner(name: str, model: FilteredDynamics, task: TaskSpec, prior=None, terminal_value=None,
                 **overrides) -> SamplingPlanner:
    """An MPPI or CEM planner with its config's defaults replaced by `overrides`, optionally around a prior
    policy and with a terminal value."""
    configs = {"mppi": (MPPI, MPPIConfig), "cem": (CEM, CEMConfig)}
    if name not in configs:
        raise ValueError(f"planner must be one of {PLANNERS}, got {name!r}")
    planner, config = configs[name]
    return planner(model, task, config(**overrides), prior, terminal_value)
