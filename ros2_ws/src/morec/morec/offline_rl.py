"""Offline model-based policy learning: SAC on filtered model rollouts (MOPO / MOBILE, with or without MOREC).

Read top to bottom:

1. `OfflineRLConfig`: every hyperparameter, with the authors' defaults (`shared/MOREC_NOTES.md`);
   per-task coefficients come from `configs/offline_rl/<task>.yaml` (`task_config`).
2. `Actor` / `TwinCritic`: tanh-Gaussian policy and two Q-networks evaluated as one stacked MLP;
   observation standardisation lives inside both, so the exported graphs need no preprocessing.
3. `ModelBuffer`: a ring buffer holding the last `retain_rounds` rounds of model rollouts.
4. `OfflineTrainer`: every `rollout_every` gradient steps it rolls the current policy out through the
   rollout engine (`FilteredDynamics`: with MOREC the filter picks among 10 candidates and ends a
   rollout whose chosen r_D falls below the threshold; without it, one random elite's sample per step
   over a short horizon); each gradient step draws `real_ratio` of its batch from the data and the
   rest from the model buffer, with the backbone's pessimism:
     MOPO    r - coef * max over members ||std||                      (at rollout time)
     MOBILE  r - coef * std over elites of E[min Q_target(s'', pi(s''))] (per update, model rows only)
   Evaluation in the simulator, a CSV log and a resumable checkpoint every `eval_every` steps.

The rollout engine is the only place candidates are drawn, scored and selected; this module calls it.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from tqdm import tqdm

from .dataset import Dataset
from .fileio import CsvLog, atomic_path, write_json
from .nn import StackedMLP, Standardizer
from .rollout import FilterConfig, FilteredDynamics, Step
from .task_spec import TaskSpec, sim_dir

BACKBONES = ("mopo", "mobile")
CHECKPOINT = "checkpoint.pt"
LOG_COLUMNS = ["step", "critic_loss", "actor_loss", "alpha", "q_mean", "penalty_mean", "rollout_length",
               "ended_by_filter", "ended_by_task", "model_buffer", "eval_return", "eval_return_std", "eval_score",
               "seconds"]


@dataclass
class OfflineRLConfig:
    backbone: str = "mopo"
    morec: bool = True  # filtered candidates, long rollouts ended by the filter; False: random elite, short rollouts
    penalty_coef: float = 0.5
    # Model rollouts
    rollout_horizon: int = 100  # MOREC's; the backbones alone use 1-5
    rollout_batch: int = 2000  # start states per round
    rollout_every: int = 1000  # gradient steps between rounds
    retain_rounds: int = 5  # rounds the model buffer keeps
    selection: str = "argmax"  # or "softmax" (temperature 0.1)
    threshold: float = 0.6  # a chosen r_D below this ends the rollout (transition kept, flagged terminal)
    # Without MOREC, > 0: a step whose ensemble disagreement exceeds this quantile of the disagreement on the
    # data's own (s, a) ends the rollout instead (kept, flagged terminal): long rollouts ended by the
    # ensemble's uncertainty, the filter's job done by the backbone's own signal
    end_quantile: float = 0.0
    # With MOREC, > 0: the threshold is this quantile of the chosen r_D at the data's own (s, a) pairs, in place
    # of `threshold`: a reward's scale depends on its training, so a quantile, not an absolute value, says which
    # share of the data's own steps would count as untrusted (0.05: a step less trusted than 95% of them ends)
    threshold_quantile: float = 0.0
    real_ratio: float = 0.05
    mobile_samples: int = 10  # next-state samples per elite for MOBILE's Bellman-inconsistency penalty
    # MOBILE's penalty pushes batch x elites x samples (~12k) next states through actor and critics every step, most
    # of a step's time: "auto" runs those forward passes in bfloat16 where the CPU computes it natively (AMX /
    # AVX-512 BF16: 3.3-4.1x faster here, the mean penalty within 0.05% of float32's; bench/sac_speed.py), "fp32" never
    mobile_precision: str = "auto"
    # SAC
    hidden: tuple[int, ...] = (256, 256)  # actor and critic hidden layers
    actor_lr: float = 1e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 1e-4
    init_alpha: float = 1.0
    actor_cosine_decay: bool = True
    gamma: float = 0.99
    tau: float = 0.005
    batch_size: int = 256
    # Run
    steps: int = 100_000  # gradient steps
    eval_every: int = 10_000
    eval_episodes: int = 5
    log_every: int = 1000
    seed: int = 0
    threads: int = 2

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.steps < 1 or self.eval_every < 1 or self.rollout_every < 1 or self.log_every < 1:
            raise ValueError(f"steps, eval_every, rollout_every and log_every must be positive; got {self}")
        if not 0 <= self.real_ratio <= 1 or self.rollout_horizon < 1 or self.rollout_batch < 1:
            raise ValueError(f"need 0 <= real_ratio <= 1, rollout_horizon >= 1, rollout_batch >= 1; got {self}")
        if not 0 <= self.end_quantile < 1:
            raise ValueError(f"end_quantile must be in [0, 1), got {self.end_quantile}")
        if self.morec and self.end_quantile:
            raise ValueError("end_quantile ends rollouts on the disagreement in place of MOREC's r_D: "
                             "use it with --no-morec")
        if not 0 <= self.threshold_quantile < 1:
            raise ValueError(f"threshold_quantile must be in [0, 1), got {self.threshold_quantile}")
        if self.threshold_quantile and not self.morec:
            raise ValueError("threshold_quantile calibrates MOREC's r_D threshold: use it without --no-morec")
        if self.mobile_precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"mobile_precision must be auto, fp32 or bf16, got {self.mobile_precision!r}")

    @property
    def method(self) -> str:
        if self.end_quantile:
            return f"{self.backbone.upper()}, ended by disagreement"
        if self.threshold_quantile:
            return f"MOREC-{self.backbone.upper()}, threshold at a data quantile"
        return ("MOREC-" if self.morec else "") + self.backbone.upper()


def task_config(task: TaskSpec, backbone: str, morec: bool, level: str) -> dict:
    """Overrides for one (backbone, MOREC or not, dataset level) from `sim/offline_rl/<task>.yaml`."""
    path = sim_dir() / "offline_rl" / f"{task.name}.yaml"
    if not path.exists():
        raise ValueError(f"no offline-RL settings for task {task.name!r}: write {path} (see halfcheetah.yaml there)")
    doc = yaml.safe_load(path.read_text())
    if backbone not in doc:
        raise ValueError(f"{path} has no section {backbone!r}; sections: {sorted(doc)}")
    section = doc[backbone]
    coefs = section.get("penalty_coef", {})
    if level not in coefs:
        raise ValueError(f"{path}: {backbone}.penalty_coef has no dataset level {level!r}; levels: {sorted(coefs)}")
    out = {"penalty_coef": float(coefs[level]), **section.get("settings", {}),
           **(doc.get("morec", {}) if morec else section.get("without_morec", {}))}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in out.items()}


# ---------------------------------------------------------------------------------------------------------
# Networks


class Actor(nn.Module):
    """Tanh-Gaussian policy in the task's action units; observations standardised inside."""

    def __init__(self, obs_dim: int, low: np.ndarray, high: np.ndarray, hidden: tuple[int, ...]):
        super().__init__()
        act_dim = self.act_dim = len(low)
        self.scaler = Standardizer(obs_dim)
        layers, n_in = [], obs_dim
        for n in hidden:
            layers += [nn.Linear(n_in, n), nn.ReLU()]
            n_in = n
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(n_in, 2 * act_dim)
        self.register_buffer("center", torch.as_tensor((high + low) / 2, dtype=torch.float32))
        self.register_buffer("half_range", torch.as_tensor((high - low) / 2, dtype=torch.float32))

    def _dist(self, obs):
        out = self.head(self.trunk(self.scaler(obs)))
        # Slices of a known width (not chunk) keep the exported graph's action dimension static.
        return out[:, : self.act_dim], out[:, self.act_dim:].clamp(-5.0, 2.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic action (what is exported and evaluated)."""
        mean, _ = self._dist(obs)
        return self.center + self.half_range * torch.tanh(mean)

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action and its log-probability (tanh-corrected, in [-1, 1] units)."""
        mean, log_std = self._dist(obs)
        u = mean + log_std.exp() * torch.randn_like(mean)
        logp = (-0.5 * ((u - mean) / log_std.exp()).pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        logp = logp - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
        return self.center + self.half_range * torch.tanh(u), logp


class TwinCritic(nn.Module):
    """Two Q-networks as one stacked MLP: Q(s, a) -> [2, B]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.scaler = Standardizer(obs_dim)
        self.mlp = StackedMLP(2, [obs_dim + act_dim, *hidden, 1], nn.ReLU)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.scaler(obs), act], dim=-1)
        return self.mlp(x.expand(2, *x.shape)).squeeze(-1)


class MinCritic(nn.Module):
    """min over the twins, Q(s, a) -> [B]: the critic's exported form."""

    def __init__(self, critic: TwinCritic):
        super().__init__()
        self.critic = critic

    def forward(self, obs, act):
        return self.critic(obs, act).min(dim=0).values


# ---------------------------------------------------------------------------------------------------------
# Model buffer


class ModelBuffer:
    """Ring buffer of model transitions; terminal rows (task end or ended by the filter) are never bootstrapped."""

    FIELDS = ("obs", "act", "reward", "next_obs", "terminal")

    def __init__(self, capacity: int, obs_dim: int, act_dim: int):
        self.capacity, self.size, self.ptr = capacity, 0, 0
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.act = np.zeros((capacity, act_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.terminal = np.zeros(capacity, np.float32)

    def add(self, obs, act, reward, next_obs, terminal) -> None:
        n = len(obs)
        idx = (self.ptr + np.arange(n)) % self.capacity
        for name, value in zip(self.FIELDS, (obs, act, reward, next_obs, terminal)):
            getattr(self, name)[idx] = value
        self.ptr = (self.ptr + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        idx = rng.integers(0, self.size, n)
        return tuple(getattr(self, name)[idx] for name in self.FIELDS)

    def state_dict(self) -> dict:
        return {"size": self.size, "ptr": self.ptr, **{k: getattr(self, k)[: self.size].copy() for k in self.FIELDS}}

    def load_state_dict(self, state: dict) -> None:
        self.size, self.ptr = state["size"], state["ptr"]
        for k in self.FIELDS:
            getattr(self, k)[: self.size] = state[k]


def mix_batch(real: tuple[np.ndarray, ...], model: tuple[np.ndarray, ...]) -> list[torch.Tensor]:
    """Real rows first, then model rows, each field one tensor."""
    return [torch.from_numpy(np.concatenate([r, m])) for r, m in zip(real, model)]


# ---------------------------------------------------------------------------------------------------------
# Training


@dataclass
class RolloutStats:
    length: float = 0.0  # mean steps per rollout before it ended or reached the horizon
    ended_by_filter: float = 0.0  # share of rollouts the filter ended
    ended_by_task: float = 0.0  # share ended by the task's termination rule
    transitions: int = 0
    mopo_penalty: float = 0.0  # mean reward penalty of the round's transitions (MOPO)


class OfflineTrainer:
    """One resumable run: `run()` trains to `cfg.steps`, or to `until` and stops after checkpointing there."""

    def __init__(self, task: TaskSpec, data: Dataset, model: FilteredDynamics, cfg: OfflineRLConfig,
                 out_dir: str | Path, resume: bool = False, progress: bool = True, dataset_name: str = ""):
        if model.cfg.mode != ("filter" if cfg.morec else "random_elite"):
            raise ValueError(f"{cfg.method} needs a rollout engine in mode "
                             f"{'filter' if cfg.morec else 'random_elite'!r}, got {model.cfg.mode!r}")
        torch.set_num_threads(cfg.threads)
        self.task, self.data, self.model, self.cfg = task, data, model, cfg
        self.out, self.progress, self.dataset_name = Path(out_dir), progress, dataset_name
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        obs_dim, act_dim = data.obs_dim, data.act_dim
        self.actor = Actor(obs_dim, task.action_low, task.action_high, cfg.hidden)
        self.critic = TwinCritic(obs_dim, act_dim, cfg.hidden)
        for net in (self.actor, self.critic):
            net.scaler.fit(data.observations)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), requires_grad=True)
        self.target_entropy = -float(act_dim)
        # Fused: one kernel per optimizer step instead of a loop over the parameters (bench/sac_speed.py)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, fused=True)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, fused=True)
        self.actor_sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.actor_opt, cfg.steps) if cfg.actor_cosine_decay else None
        self.buffer = ModelBuffer(cfg.rollout_batch * cfg.rollout_horizon * cfg.retain_rounds, obs_dim, act_dim)
        self.real = (data.observations, data.actions, data.rewards, data.next_observations,
                     data.terminals.astype(np.float32))
        self.step, self.curve, self.elapsed = 0, [], 0.0
        self.rollout_stats = RolloutStats()
        self.mobile_bf16 = cfg.mobile_precision == "bf16" or (
            cfg.mobile_precision == "auto" and torch.ops.mkldnn._is_mkldnn_bf16_supported())
        # The ends calibrated on the data's own pairs: the disagreement's (without MOREC) or r_D's (with it)
        on_data = self._step_on_data() if cfg.end_quantile or cfg.threshold_quantile else None
        self.end_disagreement = (float(np.quantile(on_data.disagreement, cfg.end_quantile))
                                 if cfg.end_quantile else None)
        if cfg.threshold_quantile:
            threshold = float(np.quantile(on_data.score, cfg.threshold_quantile))
            self.model.cfg = replace(self.model.cfg, threshold=threshold)
        self.log = CsvLog(self.out / "log.csv", LOG_COLUMNS, append=resume and (self.out / CHECKPOINT).exists())
        if resume and (self.out / CHECKPOINT).exists():
            self._load(self.out / CHECKPOINT)

    def _step_on_data(self, rows: int = 20_000) -> Step:
        """The rollout engine's step at (evenly spaced) data pairs, the thresholds' calibration: candidates are drawn
        with a fixed seed, not the run's generator, so a resumed run computes the same values."""
        idx = np.linspace(0, len(self.data) - 1, min(rows, len(self.data))).astype(int)
        return self.model.step(self.data.observations[idx], self.data.actions[idx], np.random.default_rng(0))

    # -- the policy acting ----------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        obs = torch.as_tensor(obs, dtype=torch.float32)
        return (self.actor(obs) if deterministic else self.actor.sample(obs)[0]).numpy()

    def predict(self, obs, deterministic: bool = True):
        """stable-baselines3's calling convention, for `behavior.evaluate_policy`."""
        return self.act(np.asarray(obs)[None], deterministic)[0], None

    # -- model rollouts -------------------------------------------------------------------------------
    def rollout(self) -> RolloutStats:
        cfg = self.cfg
        obs = self.data.observations[self.rng.integers(0, len(self.data), cfg.rollout_batch)]
        lengths = np.full(len(obs), cfg.rollout_horizon)
        by_filter = np.zeros(len(obs), bool)
        by_task = np.zeros(len(obs), bool)
        alive = np.arange(len(obs))  # which rollouts the rows of `obs` still belong to
        added, penalty_sum = 0, 0.0
        for h in range(cfg.rollout_horizon):
            act = self.act(obs)
            step = self.model.step(obs, act, self.rng)
            if cfg.morec:
                filtered = step.score < self.model.cfg.threshold  # already terminal: the rollout engine flags it
            elif self.end_disagreement is not None:
                filtered = step.disagreement > self.end_disagreement
            else:
                filtered = np.zeros(len(obs), bool)
            ended = step.terminal | filtered
            penalty = cfg.penalty_coef * step.disagreement if cfg.backbone == "mopo" else np.zeros(len(obs))
            self.buffer.add(obs, act, step.reward - penalty, step.next_obs, ended)
            added, penalty_sum = added + len(obs), penalty_sum + float(penalty.sum())
            by_filter[alive[filtered]] = True
            by_task[alive[ended & ~filtered]] = True
            lengths[alive[ended]] = h + 1
            alive, obs = alive[~ended], step.next_obs[~ended]
            if not len(obs):
                break
        return RolloutStats(float(lengths.mean()), float(by_filter.mean()), float(by_task.mean()), added,
                            penalty_sum / added)

    # -- one gradient step ----------------------------------------------------------------------------
    def mobile_penalty(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Spread over elites of the mean target value of sampled next states: [B]."""
        mean, std = self.model.dynamics.predict(obs.numpy(), act.numpy())
        elites = self.model.dynamics.elites
        mu, sd = mean[elites, :, : self.model.obs_dim], std[elites, :, : self.model.obs_dim]  # [E, B, S]
        k = self.cfg.mobile_samples
        eps = self.rng.standard_normal((k, *mu.shape), dtype=np.float32)
        nxt = torch.from_numpy((mu + sd * eps).reshape(-1, mu.shape[-1]))  # [k*E*B, S]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.mobile_bf16):
            next_act, _ = self.actor.sample(nxt)
            q = self.critic_target(nxt, next_act).min(dim=0).values.float().view(k, len(elites), -1)
        return q.mean(dim=0).std(dim=0)

    @property
    def n_real(self) -> int:
        return int(round(self.cfg.batch_size * self.cfg.real_ratio))

    def sample_batch(self) -> list[torch.Tensor]:
        """`n_real` rows of the data, then the rest from the model buffer."""
        real = tuple(a[self.rng.integers(0, len(self.data), self.n_real)] for a in self.real)
        return mix_batch(real, self.buffer.sample(self.cfg.batch_size - self.n_real, self.rng))

    @torch.no_grad()
    def td_target(self, batch: list[torch.Tensor], n_real: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft Bellman target and the MOBILE penalty of each row (zero on real rows and under MOPO)."""
        obs, act, reward, next_obs, terminal = batch
        cfg, alpha = self.cfg, self.log_alpha.exp()
        next_act, next_logp = self.actor.sample(next_obs)
        next_q = self.critic_target(next_obs, next_act).min(dim=0).values - alpha * next_logp
        target = reward + cfg.gamma * (1.0 - terminal) * next_q
        penalty = torch.zeros_like(reward)
        if cfg.backbone == "mobile":
            penalty[n_real:] = self.mobile_penalty(obs[n_real:], act[n_real:])
            target = (target - cfg.penalty_coef * penalty).clamp(min=0.0)
        return target, penalty

    def update(self, batch: list[torch.Tensor], n_real: int) -> dict:
        obs, act = batch[0], batch[1]
        alpha = self.log_alpha.exp().detach()
        target, penalty = self.td_target(batch, n_real)
        q = self.critic(obs, act)
        critic_loss = (q - target).pow(2).mean(dim=1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        new_act, logp = self.actor.sample(obs)
        self.critic.requires_grad_(False)  # the actor's loss needs gradients through Q, not into its weights
        actor_loss = (alpha * logp - self.critic(obs, new_act).min(dim=0).values).mean()
        self.critic.requires_grad_(True)
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        if self.actor_sched is not None:
            self.actor_sched.step()
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()

        with torch.no_grad():
            online, target_params = list(self.critic.mlp.parameters()), list(self.critic_target.mlp.parameters())
            torch._foreach_lerp_(target_params, online, self.cfg.tau)
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(), "q_mean": q.detach().mean(),
                "penalty_mean": penalty.mean()}

    # -- the loop -------------------------------------------------------------------------------------
    def run(self, until: int | None = None) -> dict:
        cfg = self.cfg
        until = cfg.steps if until is None else min(until, cfg.steps)
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"{cfg.method} {self.task.env_id}",
                   disable=not self.progress, mininterval=5)
        start, sums, count = time.perf_counter() - self.elapsed, {}, 0
        while self.step < until:
            if self.step % cfg.rollout_every == 0:
                self.rollout_stats = self.rollout()
            losses = self.update(self.sample_batch(), self.n_real)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            self.step += 1
            bar.update(1)
            evaluate = self.step % cfg.eval_every == 0 or self.step == cfg.steps
            if self.step % cfg.log_every == 0 or evaluate:
                self.elapsed = time.perf_counter() - start
                self._log({k: float(v) / count for k, v in sums.items()}, evaluate)
                sums, count = {}, 0
            if evaluate:
                self._save(self.out / CHECKPOINT)
        bar.close()
        return self.result()

    def evaluate(self) -> tuple[float, float]:
        from .behavior import evaluate_policy

        # Fixed evaluation seeds, apart from the training generator, so evaluating changes nothing in training.
        return evaluate_policy(self, self.task, self.cfg.eval_episodes, seed=100_000)

    def _log(self, losses: dict, evaluate: bool) -> None:
        s = self.rollout_stats
        if self.cfg.backbone == "mopo":  # its penalty is charged at rollout time, not per update
            losses["penalty_mean"] = s.mopo_penalty
        row = {"step": self.step, **losses, "alpha": float(self.log_alpha.detach().exp()), "rollout_length": s.length,
               "ended_by_filter": s.ended_by_filter, "ended_by_task": s.ended_by_task, "model_buffer": self.buffer.size,
               "seconds": round(self.elapsed, 1)}
        if evaluate:
            mean, std = self.evaluate()
            score = self.task.normalized_score(mean)
            row.update(eval_return=mean, eval_return_std=std, eval_score=score)
            self.curve.append({"step": self.step, "return_mean": mean, "return_std": std, "score_mean": score,
                               "rollout_length": s.length, "ended_by_filter": s.ended_by_filter})
            if self.progress:
                tqdm.write(f"[{self.cfg.method}] step {self.step}: return {mean:.1f} +- {std:.1f}"
                           + (f" (score {score:.1f})" if score is not None else "")
                           + f", rollout length {s.length:.1f}, ended by filter {s.ended_by_filter:.2f}")
        self.log.row([row.get(c, "") for c in LOG_COLUMNS])

    def result(self) -> dict:
        last = self.curve[-1] if self.curve else {}
        return {"method": self.cfg.method, "dataset": self.dataset_name, "seed": self.cfg.seed,
                "budget_steps": self.cfg.steps, "steps_done": self.step, "curve": self.curve,
                "final": {k: last.get(k) for k in ("return_mean", "return_std", "score_mean")},
                "rollout": asdict(self.rollout_stats), "config": asdict(self.cfg),
                "threshold_used": self.model.cfg.threshold if self.cfg.morec else None,
                "steps_per_s": self.step / self.elapsed if self.elapsed else None, "library": "morec"}

    # -- checkpoints ----------------------------------------------------------------------------------
    def _save(self, path: Path) -> None:
        state = {"step": self.step, "curve": self.curve, "elapsed": self.elapsed, "config": asdict(self.cfg),
                 "rollout_stats": asdict(self.rollout_stats),
                 "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                 "critic_target": self.critic_target.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
                 "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                 "alpha_opt": self.alpha_opt.state_dict(),
                 "actor_sched": self.actor_sched.state_dict() if self.actor_sched else None,
                 "buffer": self.buffer.state_dict(), "numpy_rng": self.rng.bit_generator.state,
                 "torch_rng": torch.get_rng_state()}
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save(state, tmp)

    def _load(self, path: Path) -> None:
        state = torch.load(path, weights_only=False)
        saved = OfflineRLConfig(**{**state["config"], "hidden": tuple(state["config"]["hidden"])})
        if replace(saved, threads=self.cfg.threads) != replace(self.cfg, threads=self.cfg.threads):
            raise ValueError(f"{path} was written by a run with another configuration; resume with the same "
                             f"settings or start a new output directory")
        self.step, self.curve, self.elapsed = state["step"], state["curve"], state["elapsed"]
        self.rollout_stats = RolloutStats(**state["rollout_stats"])
        for name in ("actor", "critic", "critic_target", "actor_opt", "critic_opt", "alpha_opt"):
            getattr(self, name).load_state_dict(state[name])
        if self.actor_sched is not None:
            self.actor_sched.load_state_dict(state["actor_sched"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.buffer.load_state_dict(state["buffer"])
        self.rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])


def make_rollout_model(dynamics, reward, cfg: OfflineRLConfig, task: TaskSpec) -> FilteredDynamics:
    """The rollout engine a method needs: filtered (MOREC) or one random elite's sample per step."""
    mode = "filter" if cfg.morec else "random_elite"
    filter_cfg = FilterConfig(mode=mode, selection=cfg.selection, threshold=cfg.threshold)
    return FilteredDynamics(dynamics, reward if cfg.morec else None, filter_cfg, task.is_terminal)


def write_result(trainer: OfflineTrainer, path: str | Path, command: str, model: str = "bundle") -> dict:
    """The run's result JSON; a run through the simulator (`--model simulator`) is its own method."""
    result = {**trainer.result(), "command": command, "model": model}
    if model == "simulator":
        result["method"] += " (true dynamics)"
    write_json(path, result)
    return result
