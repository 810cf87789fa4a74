"""MOREC dynamics reward: a discriminator history learned adversarially, averaged into r_D(s, a, s').

Training is a GAIL-style game on a fixed data set. The generator is a copy of the maximum-likelihood
ensemble; the discriminator D(s, a, s') tells data transitions from generated ones. Every
`snapshot_every` iterations a snapshot of D is kept with its calibration: the mean logit on data
("expert value") and on model samples ("learner value"). The reward averages the last snapshots:

    p_k = sigmoid(rescale(clip(logit_k, learner_k, expert_k)) to [-1, 1]),  r_D = -log(1 - mean_k p_k + 1e-9)

so r_D lies in about [0.31, 1.31]. docs/dynamics_reward.md lists every choice the paper leaves open.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .dataset import Dataset
from .diagnostics import segment_starts
from .ensemble import EnsembleDynamics, TorchDynamics, _load_checkpoint
from .fileio import CsvLog, atomic_path
from .nn import MinMaxScaler, StackedMLP, Standardizer
from .rollout import FilterConfig, FilteredDynamics

DELTA_SCALINGS = ("state", "delta")
GENERATOR_UPDATES = ("reparameterised", "policy_gradient")
#: The fewest rollouts a policy-gradient step averages over: its baseline is a mean over rollouts per step.
MIN_PG_ROLLOUTS = 64
#: Gradient-norm bound of a policy-gradient step. Unbounded, the score function's 1/std^2 in the narrowest
#: state dimensions threw HalfCheetah's generator off the data within 1000 iterations (its NLL from -5.5 to 2e3).
PG_GRAD_CLIP = 1.0


@dataclass
class RewardConfig:
    iterations: int = 4000
    batch_size: int = 256
    disc_lr: float = 3e-4
    gen_lr: float = 1e-4
    #: Weight of the generator's Gaussian NLL on data: anchors it to the data while it chases D.
    gen_nll_coef: float = 1.0
    #: Share of each negative batch made of data transitions with s' perturbed by Gaussian noise whose
    #: scale (relative to the per-dimension std of s' - s) is log-uniform in noise_scale. 0 = pure GAIL.
    noise_negatives: float = 0.0
    noise_scale: tuple[float, float] = (0.01, 1.0)
    snapshot_every: int = 10
    keep_snapshots: int = 400
    snapshot_stride: int = 10
    #: Calibrate the learner value on the samples the filter will actually score (the rollout
    #: ensemble's elites) rather than on the adversarial generator's.
    calibrate_on: str = "ensemble"
    calibration_size: int = 2048
    #: Scaling of the s' - s input: "state" uses the observation's min-max factor (small changes of wide
    #: dimensions barely register); "delta" standardises s' - s with its own per-dimension mean and std.
    delta_scaling: str = "state"
    #: R1 penalty gamma/2 * ||grad D||^2 on data transitions, w.r.t. the scaled (s, a) and s' - s D sees.
    gradient_penalty: float = 0.0
    #: Std of Gaussian noise added to D's scaled s' - s input in training (real and generated alike).
    input_noise: float = 0.0
    #: Share of each negative batch taken from open-loop rollouts of the ensemble's elites along recorded
    #: action sequences: (s_t, a_t, s_t+1) at a random step of a multistep_horizon-step rollout from a
    #: data state. The pool of rollouts is rebuilt every multistep_refresh iterations.
    multistep_negatives: float = 0.0
    multistep_horizon: int = 10
    multistep_refresh: int = 100
    #: How the generator chases D. "reparameterised": a gradient step through its one-step samples at data
    #: states every iteration. "policy_gradient": GAIL with the generator as the agent (state (s, a), action s'):
    #: every multistep_refresh iterations it rolls out from data states along recorded actions for
    #: multistep_horizon steps, earns log D per step, and takes one REINFORCE step (discounted reward-to-go,
    #: a per-step baseline over the rollouts, entropy bonus gen_entropy_coef); those rollouts are also the
    #: multistep negatives, so D learns from the drift of the model it trains.
    generator_update: str = "reparameterised"
    gen_entropy_coef: float = 1e-3
    gen_discount: float = 0.99
    #: Weight of a listwise loss that asks D, at each data (s, a), to pick the recorded s' out of it and
    #: pair_candidates samples of the rollout ensemble's elites (softmax over their logits): the filter's task,
    #: choosing among the candidates of one pair, trained directly; the binary loss keeps its calibration.
    pair_ranking: float = 0.0
    pair_candidates: int = 10
    seed: int = 0

    def __post_init__(self):
        if self.calibrate_on not in ("ensemble", "generator"):
            raise ValueError(f"calibrate_on must be 'ensemble' or 'generator', got {self.calibrate_on!r}")
        if self.delta_scaling not in DELTA_SCALINGS:
            raise ValueError(f"delta_scaling must be one of {DELTA_SCALINGS}, got {self.delta_scaling!r}")
        if min(self.gradient_penalty, self.input_noise, self.noise_negatives, self.multistep_negatives,
               self.pair_ranking) < 0:
            raise ValueError("gradient_penalty, input_noise, noise_negatives, multistep_negatives and pair_ranking "
                             "must be >= 0")
        if self.pair_candidates < 1:
            raise ValueError(f"pair_candidates must be >= 1, got {self.pair_candidates}")
        if self.noise_negatives + self.multistep_negatives > 1:
            raise ValueError("noise_negatives + multistep_negatives is a share of the negatives: at most 1")
        if self.multistep_horizon < 1 or self.multistep_refresh < 1:
            raise ValueError("multistep_horizon and multistep_refresh must be >= 1")
        if self.generator_update not in GENERATOR_UPDATES:
            raise ValueError(f"generator_update must be one of {GENERATOR_UPDATES}, got {self.generator_update!r}")
        if self.generator_update == "policy_gradient" and self.multistep_negatives == 0:
            raise ValueError("generator_update='policy_gradient' learns from multistep rollouts: "
                             "set multistep_negatives > 0")


class Discriminator(nn.Module):
    """K stacked discriminators (K = 1 while training, K = snapshots at use) scoring candidate next states.

    Branch 1 embeds (s, a) once per pair and is shared by all its candidates; branch 2 embeds s' - s;
    an MLP head on both lets the (s, a) context decide which state changes are plausible. `width`
    scales the hidden layers (not the embeddings): a distilled student can be a fraction of the teacher,
    and branch 2 and the head, which run once per candidate, cost about width^2. `delta_scaling`
    (RewardConfig) decides whether s' - s is scaled like s or by its own `delta_scaler`.
    """

    def __init__(self, obs_dim: int, act_dim: int, k: int = 1, width: float = 1.0, delta_scaling: str = "state"):
        super().__init__()
        if delta_scaling not in DELTA_SCALINGS:
            raise ValueError(f"delta_scaling must be one of {DELTA_SCALINGS}, got {delta_scaling!r}")
        self.obs_dim, self.act_dim, self.k, self.width = obs_dim, act_dim, k, width
        self.delta_scaling = delta_scaling
        h1, h2, h_head = (max(4, round(n * width)) for n in (256, 128, 64))
        self.obs_scaler = MinMaxScaler(obs_dim, 0.8)
        self.act_scaler = MinMaxScaler(act_dim, 1.0)
        # Only present in "delta" mode, so the state dicts of earlier rewards load unchanged.
        self.delta_scaler = Standardizer(obs_dim) if delta_scaling == "delta" else None
        self.sa_branch = StackedMLP(k, [obs_dim + act_dim, h1, h2, 64], nn.ReLU, out_activation=True)
        self.delta_branch = StackedMLP(k, [obs_dim, h1, h2, 16], nn.ReLU, out_activation=True)
        self.head = StackedMLP(k, [80, h_head, 1], nn.ReLU)

    def forward(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor,
                delta_noise: float = 0.0) -> torch.Tensor:
        """obs [B, S], act [B, A], next_obs candidates [B, C, S] -> logits [K, B, C]. `delta_noise`: the std
        of Gaussian noise on the scaled s' - s (training only)."""
        return self.logits(*self.scaled_inputs(obs, act, next_obs), delta_noise)

    def scaled_inputs(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor):
        """What the branches see: scaled (s, a) [B, S+A] and scaled s' - s [B, C, S]."""
        sa = torch.cat([self.obs_scaler(obs), self.act_scaler(act)], dim=-1)
        change = next_obs - obs.unsqueeze(1)
        delta = self.delta_scaler(change) if self.delta_scaler is not None else self.obs_scaler.scale(change)
        return sa, delta

    def logits(self, sa: torch.Tensor, delta: torch.Tensor, delta_noise: float = 0.0) -> torch.Tensor:
        """Logits [K, B, C] from scaled inputs."""
        b, c, _ = delta.shape
        if delta_noise:
            delta = delta + delta_noise * torch.randn_like(delta)
        h_sa = self.sa_branch(sa.expand(self.k, *sa.shape))  # [K, B, 64]
        delta = delta.reshape(b * c, self.obs_dim)
        h_delta = self.delta_branch(delta.expand(self.k, *delta.shape))  # [K, B*C, 16]
        h_sa = h_sa.unsqueeze(2).expand(self.k, b, c, 64).reshape(self.k, b * c, 64)
        return self.head(torch.cat([h_sa, h_delta], dim=-1)).reshape(self.k, b, c)


class DynamicsReward(nn.Module):
    """r_D from K calibrated discriminator snapshots, evaluated together."""

    def __init__(self, obs_dim: int, act_dim: int, k: int, width: float = 1.0, delta_scaling: str = "state"):
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.disc = Discriminator(obs_dim, act_dim, k, width, delta_scaling)
        self.register_buffer("expert_value", torch.zeros(k, 1, 1))
        self.register_buffer("learner_value", -torch.ones(k, 1, 1))
        self.metadata: dict = {}

    @property
    def num_snapshots(self) -> int:
        return self.disc.k

    def forward(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """obs [B, S], act [B, A], candidates [B, C, S] -> r_D [B, C]."""
        logits = self.disc(obs, act, next_obs)
        clipped = torch.minimum(torch.maximum(logits, self.learner_value), self.expert_value)
        unit = 2.0 * (clipped - self.learner_value) / (self.expert_value - self.learner_value) - 1.0
        p = torch.sigmoid(unit).mean(dim=0)
        return -torch.log(1.0 - p + 1e-9)

    def mean_logit(self, obs, act, next_obs) -> torch.Tensor:
        """Uncalibrated average logit over snapshots (a diagnostic: no clipping, no ties)."""
        return self.disc(obs, act, next_obs).mean(dim=0)

    @classmethod
    def from_snapshots(cls, snapshots: list[dict], obs_dim: int, act_dim: int,
                       delta_scaling: str = "state") -> "DynamicsReward":
        """Stack snapshot state dicts of a K=1 Discriminator (+ calibration) into one K-snapshot reward."""
        model = cls(obs_dim, act_dim, len(snapshots), delta_scaling=delta_scaling)
        stacked = {key: torch.cat([s["disc"][key] for s in snapshots], dim=0) if key.split(".")[-1] in
                   ("weight", "bias") else snapshots[-1]["disc"][key] for key in snapshots[0]["disc"]}
        model.disc.load_state_dict(stacked)
        model.expert_value.copy_(torch.tensor([s["expert"] for s in snapshots]).view(-1, 1, 1))
        model.learner_value.copy_(torch.tensor([s["learner"] for s in snapshots]).view(-1, 1, 1))
        return model.eval()

    def thin(self, count: int) -> "DynamicsReward":
        """Keep `count` snapshots evenly spaced over the history, always including the newest."""
        if count >= self.num_snapshots:
            return self
        newest = self.num_snapshots - 1
        return self.select(sorted({int(round(i)) for i in np.linspace(newest, 0, count)}) if count > 1 else [newest])

    def select(self, indices: list[int]) -> "DynamicsReward":
        """A reward from a subset of the snapshots (to measure what the snapshot count buys)."""
        idx = torch.as_tensor(indices)
        model = DynamicsReward(self.obs_dim, self.act_dim, len(indices), self.disc.width, self.disc.delta_scaling)
        model.load_state_dict({k: v[idx] if k.split(".")[-1] in ("weight", "bias") or k.endswith("_value") else v
                               for k, v in self.state_dict().items()})
        model.metadata = {**self.metadata, "snapshots_used": len(indices)}
        return model.eval()

    def save(self, path: str | Path) -> None:
        state = {"kind": "morec-dynamics-reward", "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                 "snapshots": self.num_snapshots, "width": self.disc.width,
                 "delta_scaling": self.disc.delta_scaling, "state_dict": self.state_dict(), "metadata": self.metadata}
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save(state, tmp)

    @classmethod
    def load(cls, path: str | Path) -> "DynamicsReward":
        state = _load_checkpoint(path, "morec-dynamics-reward", "morec train-reward")
        model = cls(state["obs_dim"], state["act_dim"], state["snapshots"], state.get("width", 1.0),
                    state.get("delta_scaling", "state"))
        model.load_state_dict(state["state_dict"])
        model.metadata = state["metadata"]
        return model.eval()


class TorchReward:
    """RewardBackend over an in-memory DynamicsReward."""

    def __init__(self, model: DynamicsReward):
        self.model = model.eval()

    @torch.no_grad()
    def score(self, obs, act, candidates):
        return self.model(torch.from_numpy(np.asarray(obs, np.float32)), torch.from_numpy(np.asarray(act, np.float32)),
                          torch.from_numpy(np.ascontiguousarray(candidates, np.float32))).numpy()


def sample_members(model: EnsembleDynamics, obs: torch.Tensor, act: torch.Tensor, members: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """One reparameterised next-state sample per row, row i from ensemble member members[i]."""
    mean, logvar = model(obs, act)
    rows = torch.arange(len(obs))
    mu, std = mean[members, rows, : model.obs_dim], torch.exp(0.5 * logvar[members, rows, : model.obs_dim])
    eps = torch.randn(mu.shape, generator=generator)
    return obs + mu + std * eps


def gradient_penalty(disc: Discriminator, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor,
                     gamma: float) -> torch.Tensor:
    """R1 regulariser gamma/2 * mean ||grad_x D(x)||^2 over data transitions [B, .], with x all of D's inputs in
    the scaled coordinates it sees ((s, a) and s' - s), so the penalty does not depend on the data's units."""
    if gamma == 0:
        return torch.zeros(())
    sa, delta = (x.detach().requires_grad_(True) for x in disc.scaled_inputs(obs, act, next_obs.unsqueeze(1)))
    grad_sa, grad_delta = torch.autograd.grad(disc.logits(sa, delta).sum(), (sa, delta), create_graph=True)
    return 0.5 * gamma * (grad_sa.pow(2).sum(-1) + grad_delta.pow(2).sum((-2, -1))).mean()


def open_loop_transitions(data: Dataset, dynamics: FilteredDynamics, horizon: int, rollouts: int,
                          rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every step (s_t, a_t, s_t+1) of open-loop model rollouts, each from a recorded state along the
    `horizon` recorded actions that follow it in the same episode: tensors [horizon * rollouts, .], step-major."""
    starts = segment_starts(data, horizon, rollouts, rng)
    steps = starts[None, :] + np.arange(horizon)[:, None]  # [H, N]
    first = data.observations[starts]
    states = dynamics.rollout(first, data.actions[steps], rng)["next_obs"]  # [H, N, S]
    before = np.concatenate([first[None], states[:-1]])
    return (torch.from_numpy(before.reshape(-1, data.obs_dim)),
            torch.from_numpy(data.actions[steps].reshape(-1, data.act_dim)),
            torch.from_numpy(states.reshape(-1, data.obs_dim)))


@torch.no_grad()
def generator_rollouts(data: Dataset, generator: EnsembleDynamics, horizon: int, rollouts: int,
                       rng: np.random.Generator, clip: float = 25.0) -> dict[str, torch.Tensor]:
    """The generator as an agent: open-loop rollouts from recorded states along the `horizon` recorded actions
    that follow them in one episode, each step a random member's Gaussian sample (clipped to +-clip, as the
    rollout engine's candidates). Arrays [H, N, .]: obs, act, next_obs, the member that drew each step and
    whether its draw was clipped."""
    starts = segment_starts(data, horizon, rollouts, rng)
    steps = starts[None, :] + np.arange(horizon)[:, None]
    act = torch.from_numpy(data.actions[steps])
    members = torch.from_numpy(rng.integers(0, generator.cfg.members, steps.shape))
    state, before, after, clipped = torch.from_numpy(data.observations[starts]), [], [], []
    for t in range(horizon):
        before.append(state)
        drawn = sample_members(generator, state, act[t], members[t])
        state = drawn.clamp(-clip, clip)
        after.append(state)
        clipped.append((state != drawn).any(-1))
    return {"obs": torch.stack(before), "act": act, "next_obs": torch.stack(after), "members": members,
            "clipped": torch.stack(clipped)}


def policy_gradient_loss(generator: EnsembleDynamics, rollouts: dict[str, torch.Tensor], rewards: torch.Tensor,
                         discount: float, entropy_coef: float) -> torch.Tensor:
    """REINFORCE for the generator on its rollouts ([H, N] rewards): the log-likelihood of each drawn s' - s
    under the member that drew it, weighted by the discounted reward-to-go less its mean over the rollouts at
    that step (scaled by their std), minus entropy_coef times the Gaussian's entropy. Steps whose draw was
    clipped are left out: the clipped state is not the Gaussian's sample."""
    horizon, n = rewards.shape
    to_go, running = torch.empty_like(rewards), torch.zeros(n)
    for t in reversed(range(horizon)):
        running = rewards[t] + discount * running
        to_go[t] = running
    advantage = (to_go - to_go.mean(1, keepdim=True)) / (to_go.std(1, keepdim=True) + 1e-8)
    obs, nxt = rollouts["obs"].reshape(horizon * n, -1), rollouts["next_obs"].reshape(horizon * n, -1)
    mean, logvar = generator(obs, rollouts["act"].reshape(horizon * n, -1))
    rows, who, s = torch.arange(horizon * n), rollouts["members"].reshape(-1), generator.obs_dim
    mu, logvar = mean[who, rows, :s], logvar[who, rows, :s]
    log_prob = -0.5 * (((nxt - obs - mu) ** 2) * torch.exp(-logvar) + logvar + math.log(2 * math.pi)).sum(-1)
    entropy = 0.5 * (logvar + 1 + math.log(2 * math.pi)).sum(-1)
    drawn = (~rollouts["clipped"].reshape(-1)).float()
    return -(advantage.reshape(-1) * log_prob * drawn).mean() - entropy_coef * entropy.mean()


def train_dynamics_reward(data: Dataset, ensemble: EnsembleDynamics, cfg: RewardConfig = RewardConfig(),
                          log_csv: str | Path | None = None, progress: bool = True,
                          action_bounds: tuple[np.ndarray, np.ndarray] | None = None) -> DynamicsReward:
    """Learn the dynamics reward on `data`, with a copy of `ensemble` as the generator."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    obs, act = torch.from_numpy(data.observations), torch.from_numpy(data.actions)
    nxt, rew = torch.from_numpy(data.next_observations), torch.from_numpy(data.rewards)
    n, members = len(data), ensemble.cfg.members
    elites = ensemble.elites.clone()

    disc = Discriminator(data.obs_dim, data.act_dim, k=1, delta_scaling=cfg.delta_scaling)
    disc.obs_scaler.fit(np.minimum(data.observations.min(0), data.next_observations.min(0)),
                        np.maximum(data.observations.max(0), data.next_observations.max(0)))
    if disc.delta_scaler is not None:
        disc.delta_scaler.fit(data.next_observations - data.observations)
    low, high = action_bounds if action_bounds is not None else (data.actions.min(0), data.actions.max(0))
    disc.act_scaler.fit(low, high)
    # requires_grad_: a copy of an ensemble frozen by an earlier call (below) must still learn.
    generator = copy.deepcopy(ensemble).train().requires_grad_(True)
    for p in ensemble.parameters():
        p.requires_grad_(False)
    d_opt = torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr)
    g_opt = torch.optim.Adam(generator.mlp.parameters(), lr=cfg.gen_lr)
    delta_std = torch.from_numpy((data.next_observations - data.observations).std(0))
    log_lo, log_hi = np.log(cfg.noise_scale[0]), np.log(cfg.noise_scale[1])
    n_noise = int(round(cfg.noise_negatives * cfg.batch_size))
    n_multi = int(round(cfg.multistep_negatives * cfg.batch_size))
    n_fake = cfg.batch_size - n_noise - n_multi
    # The rollout engine's unfiltered mode: the drift of the elites the filter will score, as deployed.
    elite_rollouts = FilteredDynamics(TorchDynamics(ensemble), None, FilterConfig(mode="random_elite"))
    # Enough rollouts that each pooled transition is drawn about once before the next refresh.
    pool_rollouts = math.ceil(n_multi * cfg.multistep_refresh / cfg.multistep_horizon)
    policy_gradient = cfg.generator_update == "policy_gradient"
    if policy_gradient:
        pool_rollouts = max(pool_rollouts, MIN_PG_ROLLOUTS)
    calib = torch.from_numpy(rng.choice(n, size=min(cfg.calibration_size, n), replace=False))
    snapshots: list[dict] = []
    log = CsvLog(log_csv, ["iteration", "d_loss", "g_adv", "g_nll", "logit_data", "logit_model", "logit_noise",
                           "logit_multistep", "grad_penalty", "pair_rank"])
    start = time.time()

    for it in tqdm(range(1, cfg.iterations + 1), desc="dynamics reward", disable=not progress, mininterval=2):
        idx = torch.from_numpy(rng.integers(0, n, cfg.batch_size))
        s, a, s_next = obs[idx], act[idx], nxt[idx]
        who = torch.from_numpy(rng.integers(0, members, cfg.batch_size))
        with torch.set_grad_enabled(not policy_gradient):  # only the reparameterised step differentiates it
            fake = sample_members(generator, s, a, who)

        # Discriminator: data = 1; generator samples and (optionally) noise-perturbed data and states from
        # multistep model rollouts = 0. Negative i is scored at the (s, a) it was made for.
        scale = torch.from_numpy(np.exp(rng.uniform(log_lo, log_hi, (n_noise, 1))).astype(np.float32))
        noisy = s_next[n_fake:n_fake + n_noise] + scale * delta_std * torch.randn(n_noise, data.obs_dim)
        negatives = torch.cat([fake.detach()[:n_fake], noisy])
        neg_obs, neg_act = s[: n_fake + n_noise], a[: n_fake + n_noise]
        if n_multi:
            if (it - 1) % cfg.multistep_refresh == 0:
                if policy_gradient:
                    pool, g_adv = _policy_gradient_step(generator, disc, g_opt, data, cfg, pool_rollouts, rng)
                else:
                    pool = open_loop_transitions(data, elite_rollouts, cfg.multistep_horizon, pool_rollouts, rng)
            pick = torch.from_numpy(rng.integers(0, len(pool[0]), n_multi))
            neg_obs, neg_act, negatives = (torch.cat([x, pooled[pick]])
                                           for x, pooled in zip((neg_obs, neg_act, negatives), pool))
        logit_real = disc(s, a, s_next.unsqueeze(1), cfg.input_noise)[0, :, 0]
        logit_neg = disc(neg_obs, neg_act, negatives.unsqueeze(1), cfg.input_noise)[0, :, 0]
        penalty = gradient_penalty(disc, s, a, s_next, cfg.gradient_penalty)
        pair_rank = (_pair_ranking_loss(disc, ensemble, elites, s, a, s_next, cfg, rng) if cfg.pair_ranking
                     else torch.zeros(()))
        d_loss = (F.binary_cross_entropy_with_logits(logit_real, torch.ones_like(logit_real))
                  + F.binary_cross_entropy_with_logits(logit_neg, torch.zeros_like(logit_neg)) + penalty
                  + cfg.pair_ranking * pair_rank)
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()

        # Generator: stay likely under the data and (reparameterised mode) fool D by the gradient through its
        # sample; in policy-gradient mode it chases D at each refresh above.
        if not policy_gradient:
            g_adv = -F.logsigmoid(disc(s, a, fake.unsqueeze(1), cfg.input_noise)).mean()
        g_nll = _nll(generator, s, a, s_next, rew[idx])
        g_loss = cfg.gen_nll_coef * g_nll if policy_gradient else g_adv + cfg.gen_nll_coef * g_nll
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()

        if it % cfg.snapshot_every == 0:
            snapshots.append(_snapshot(disc, generator if cfg.calibrate_on == "generator" else ensemble,
                                       elites if cfg.calibrate_on == "ensemble" else None,
                                       obs[calib], act[calib], nxt[calib], rng))
            snapshots = snapshots[-cfg.keep_snapshots:]
        if it % 100 == 0:
            log.row([it, d_loss.item(), g_adv.item(), g_nll.item(), logit_real.mean().item(),
                     logit_neg[:n_fake].mean().item() if n_fake else float("nan"),
                     logit_neg[n_fake:n_fake + n_noise].mean().item() if n_noise else float("nan"),
                     logit_neg[n_fake + n_noise:].mean().item() if n_multi else float("nan"), penalty.item(),
                     pair_rank.item() if cfg.pair_ranking else float("nan")])

    used = snapshots[::-1][:: cfg.snapshot_stride][::-1]  # every stride-th, counted back from the newest
    reward = DynamicsReward.from_snapshots(used, data.obs_dim, data.act_dim, cfg.delta_scaling)
    reward.metadata = {"env_id": data.metadata.get("env_id"), "dataset_fingerprint": data.fingerprint(),
                       "config": asdict(cfg), "snapshots_used": len(used),
                       "train_seconds": round(time.time() - start, 1),
                       "ensemble_fingerprint": ensemble.metadata.get("dataset_fingerprint")}
    return reward


@dataclass
class DistillConfig:
    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    samples_per_elite: int = 2  # candidates per data pair, drawn as the filter draws them (FilterConfig)
    clip: float = 25.0  # the filter's candidate clip
    width: float = 1.0  # the student's hidden widths relative to the teacher's (scoring costs about width^2)
    seed: int = 0


def distill_dynamics_reward(teacher: DynamicsReward, data: Dataset, ensemble: EnsembleDynamics,
                            cfg: DistillConfig = DistillConfig(), log_csv: str | Path | None = None,
                            progress: bool = True) -> DynamicsReward:
    """One discriminator that scores like the whole snapshot history, at the cost of one snapshot.

    The teacher's r_D is -log(1 - p) with p the snapshots' mean probability, which lies in
    [sigmoid(-1), sigmoid(1)]. A single snapshot calibrated with learner value -1 and expert value 1
    gives -log(1 - sigmoid(clip(logit, -1, 1))): the same r_D when its logit is logit(p). The student
    (the teacher's architecture and input scaling) is regressed onto that target on data transitions
    and on the candidates the filter scores: samples of the ensemble's elites at the same (s, a).
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    student = DynamicsReward(teacher.obs_dim, teacher.act_dim, 1, cfg.width, teacher.disc.delta_scaling)
    for name in ("obs_scaler", "act_scaler", "delta_scaler"):
        if getattr(teacher.disc, name) is not None:
            getattr(student.disc, name).load_state_dict(getattr(teacher.disc, name).state_dict())
    student.expert_value.fill_(1.0)
    student.learner_value.fill_(-1.0)
    obs, act, nxt = (torch.from_numpy(x) for x in (data.observations, data.actions, data.next_observations))
    elites = ensemble.elites
    opt = torch.optim.Adam(student.disc.parameters(), lr=cfg.lr)
    log = CsvLog(log_csv, ["step", "mse_logit", "r_d_abs_error"])
    teacher.eval()
    start = time.time()
    for step in tqdm(range(1, cfg.steps + 1), desc="distil dynamics reward", disable=not progress, mininterval=2):
        idx = torch.from_numpy(rng.integers(0, len(data), cfg.batch_size))
        s, a = obs[idx], act[idx]
        with torch.no_grad():
            mean, std = ensemble.predict(s, a)
            mu, sd = mean[elites, :, : data.obs_dim], std[elites, :, : data.obs_dim]  # [E, B, S]
            draws = mu.unsqueeze(1) + sd.unsqueeze(1) * torch.randn(len(elites), cfg.samples_per_elite, *mu.shape[1:])
            cands = torch.cat([nxt[idx].unsqueeze(1), draws.flatten(0, 1).transpose(0, 1)], dim=1)
            cands = cands.clamp(-cfg.clip, cfg.clip)
            target_r = teacher(s, a, cands)
            p = (1.0 - torch.exp(-target_r)).clamp(torch.sigmoid(torch.tensor(-1.0)), torch.sigmoid(torch.tensor(1.0)))
            target = torch.logit(p)
        logit = student.disc(s, a, cands)[0]
        loss = F.mse_loss(logit, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0:
            with torch.no_grad():
                err = (student(s, a, cands) - target_r).abs().mean().item()
            log.row([step, loss.item(), err])
    student.metadata = {**teacher.metadata, "distilled_from_snapshots": teacher.num_snapshots,
                        "distill_config": asdict(cfg), "distill_seconds": round(time.time() - start, 1),
                        "snapshots_used": 1}
    return student.eval()


def _pair_ranking_loss(disc: Discriminator, ensemble: EnsembleDynamics, elites: torch.Tensor, obs, act, next_obs,
                       cfg: RewardConfig, rng: np.random.Generator) -> torch.Tensor:
    """Cross-entropy of D's logits over [recorded s', elite samples] at each (s, a), with the recorded one as
    the answer: how well D tells the real next state among candidates like those the filter chooses from."""
    b, c = len(obs), cfg.pair_candidates
    who = elites[torch.from_numpy(rng.integers(0, len(elites), b * c))]
    with torch.no_grad():
        candidates = sample_members(ensemble, obs.repeat_interleave(c, 0), act.repeat_interleave(c, 0), who)
    everything = torch.cat([next_obs.unsqueeze(1), candidates.reshape(b, c, -1)], dim=1)
    logits = disc(obs, act, everything, cfg.input_noise)[0]  # [B, 1 + C]
    return F.cross_entropy(logits, torch.zeros(b, dtype=torch.long))


def _nll(generator: EnsembleDynamics, obs, act, next_obs, rew) -> torch.Tensor:
    """The generator's Gaussian NLL (up to constants) of the data's (s' - s, r): its anchor to the data."""
    mean, logvar = generator(obs, act)
    target = torch.cat([next_obs - obs, rew[:, None]], dim=-1)
    return (((mean - target) ** 2) * torch.exp(-logvar) + logvar).mean()


def _policy_gradient_step(generator, disc, g_opt, data, cfg: RewardConfig, rollouts: int,
                          rng) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """One generator update in policy-gradient mode: fresh rollouts, their log D rewards, a REINFORCE step with
    its gradient norm bounded (the NLL anchor steps every iteration). Returns the rollouts flattened as D's
    multistep negatives, and the generator's adversarial loss (-mean log D over them) for the log."""
    pool = generator_rollouts(data, generator, cfg.multistep_horizon, rollouts, rng)
    with torch.no_grad():
        rewards = F.logsigmoid(disc(pool["obs"].flatten(0, 1), pool["act"].flatten(0, 1),
                                    pool["next_obs"].flatten(0, 1).unsqueeze(1))[0, :, 0]).reshape(
            pool["members"].shape)
    g_opt.zero_grad(set_to_none=True)
    policy_gradient_loss(generator, pool, rewards, cfg.gen_discount, cfg.gen_entropy_coef).backward()
    torch.nn.utils.clip_grad_norm_(generator.mlp.parameters(), PG_GRAD_CLIP)
    g_opt.step()
    return tuple(pool[k].flatten(0, 1) for k in ("obs", "act", "next_obs")), -rewards.mean()


@torch.no_grad()
def _snapshot(disc: Discriminator, sampler: EnsembleDynamics, elites: torch.Tensor | None,
              obs, act, nxt, rng: np.random.Generator) -> dict:
    """Copy D's weights with its calibration on a fixed batch of data and fresh model samples."""
    pool = elites if elites is not None else torch.arange(sampler.cfg.members)
    who = pool[torch.from_numpy(rng.integers(0, len(pool), len(obs)))]
    fake = sample_members(sampler, obs, act, who)
    expert = disc(obs, act, nxt.unsqueeze(1)).mean().item()
    learner = disc(obs, act, fake.unsqueeze(1)).mean().item()
    learner = min(learner, expert - 1e-3)  # a degenerate snapshot must not divide by zero
    return {"disc": {k: v.clone() for k, v in disc.state_dict().items()}, "expert": expert, "learner": learner}
