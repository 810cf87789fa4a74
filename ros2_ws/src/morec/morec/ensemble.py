"""Probabilistic ensemble dynamics model (MOPO/MBPO practice).

Each of the `members` Gaussian MLPs maps standardised (s, a) to the mean and log-variance of
(s' - s, r). Log-variances are soft-clamped to learnable bounds. Training minimises the Gaussian NLL
on a shuffled copy of the data per member, stops when no member's hold-out MSE improved by 1% for
`patience` epochs, restores each member's best weights and picks the `elites` with the lowest hold-out MSE.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .dataset import Dataset
from .fileio import CsvLog, atomic_path
from .nn import StackedMLP, Standardizer


@dataclass
class EnsembleConfig:
    members: int = 7
    elites: int = 5
    hidden: tuple[int, ...] = (200, 200, 200, 200)
    #: One weight-decay coefficient per linear layer (hidden layers, then the output layer).
    weight_decay: tuple[float, ...] = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
    lr: float = 1e-3
    batch_size: int = 256
    holdout_ratio: float = 0.2
    max_holdout: int = 1000
    patience: int = 5
    min_improvement: float = 0.01
    logvar_bound_coef: float = 0.01
    max_epochs: int | None = None
    max_minutes: float | None = None
    seed: int = 0


class EnsembleDynamics(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, cfg: EnsembleConfig = EnsembleConfig()):
        super().__init__()
        if len(cfg.weight_decay) != len(cfg.hidden) + 1:
            raise ValueError("weight_decay needs one coefficient per linear layer")
        self.obs_dim, self.act_dim, self.cfg = obs_dim, act_dim, cfg
        self.out_dim = obs_dim + 1
        self.input_scaler = Standardizer(obs_dim + act_dim)
        self.mlp = StackedMLP(cfg.members, [obs_dim + act_dim, *cfg.hidden, 2 * self.out_dim], nn.SiLU)
        self.max_logvar = nn.Parameter(torch.full((1, 1, self.out_dim), 0.5))
        self.min_logvar = nn.Parameter(torch.full((1, 1, self.out_dim), -10.0))
        self.register_buffer("elites", torch.arange(cfg.elites))
        self.metadata: dict = {}

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of (s' - s, r): [members, B, S+1]. Inputs [B, .] or per member [members, B, .]."""
        x = self.input_scaler(torch.cat([obs, act], dim=-1))
        if x.dim() == 2:
            x = x.expand(self.cfg.members, *x.shape)
        mean, logvar = self.mlp(x).chunk(2, dim=-1)
        logvar = self.max_logvar - F.softplus(self.max_logvar - logvar)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar

    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gaussian over (s', r) in data units: mean and std, [members, B, S+1]."""
        mean, logvar = self(obs, act)
        mean = torch.cat([mean[..., : self.obs_dim] + obs, mean[..., self.obs_dim:]], dim=-1)
        return mean, torch.exp(0.5 * logvar)

    def weight_decay_loss(self) -> torch.Tensor:
        return sum(wd * 0.5 * layer.weight.pow(2).sum()
                   for wd, layer in zip(self.cfg.weight_decay, self.mlp.linear_layers()))

    def elites_only(self) -> "EnsembleDynamics":
        """The elites as an ensemble of their own: the rollout engine never uses the other members, so the
        deployed graph costs elites/members of the full one."""
        model = EnsembleDynamics(self.obs_dim, self.act_dim, replace(self.cfg, members=self.cfg.elites))
        keep = self.elites
        state = {k: v[keep] if k.startswith("mlp.") else v for k, v in self.state_dict().items()}
        state["elites"] = torch.arange(self.cfg.elites)
        model.load_state_dict(state)
        model.metadata = {**self.metadata, "elites_of_members": self.cfg.members, "elite_members": keep.tolist()}
        return model.eval()

    # ---- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        state = {"kind": "morec-ensemble", "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                 "config": asdict(self.cfg), "state_dict": self.state_dict(), "metadata": self.metadata}
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save(state, tmp)

    @classmethod
    def load(cls, path: str | Path) -> "EnsembleDynamics":
        state = _load_checkpoint(path, "morec-ensemble", "morec train-dynamics")
        cfg = EnsembleConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in state["config"].items()})
        model = cls(state["obs_dim"], state["act_dim"], cfg)
        model.load_state_dict(state["state_dict"])
        model.metadata = state["metadata"]
        return model.eval()


class TorchDynamics:
    """DynamicsBackend over an in-memory EnsembleDynamics."""

    def __init__(self, model: EnsembleDynamics):
        self.model = model.eval()
        self.obs_dim, self.act_dim = model.obs_dim, model.act_dim
        self.elites = model.elites.numpy().copy()

    @torch.no_grad()
    def predict(self, obs, act):
        mean, std = self.model.predict(torch.from_numpy(np.asarray(obs, np.float32)),
                                       torch.from_numpy(np.asarray(act, np.float32)))
        return mean.numpy(), std.numpy()


def _load_checkpoint(path: str | Path, kind: str, how_to_make: str) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file {path} not found: train it with `{how_to_make}`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several unrelated types for a damaged file
        raise ValueError(f"model file {path} is unreadable ({err}); re-create it with `{how_to_make}`") from err
    if not isinstance(state, dict) or state.get("kind") != kind:
        raise ValueError(f"{path} is not a {kind} file; re-create it with `{how_to_make}`")
    return state


def train_ensemble(data: Dataset, cfg: EnsembleConfig = EnsembleConfig(), log_csv: str | Path | None = None,
                   progress: bool = True) -> EnsembleDynamics:
    """Fit an ensemble by maximum likelihood with early stopping on a hold-out split."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    inputs = np.concatenate([data.observations, data.actions], axis=1)
    targets = np.concatenate([data.next_observations - data.observations, data.rewards[:, None]], axis=1)
    n_holdout = min(int(cfg.holdout_ratio * len(data)), cfg.max_holdout)
    perm = rng.permutation(len(data))
    hold_idx, train_idx = perm[:n_holdout], perm[n_holdout:]

    model = EnsembleDynamics(data.obs_dim, data.act_dim, cfg)
    model.input_scaler.fit(inputs[train_idx])
    obs_t, act_t = torch.from_numpy(data.observations), torch.from_numpy(data.actions)
    tgt_t = torch.from_numpy(targets.astype(np.float32))
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    best_mse = np.full(cfg.members, np.inf)
    best_state = copy.deepcopy(model.state_dict())
    stale, epoch, start = 0, 0, time.time()
    writer = CsvLog(log_csv, ["epoch", "train_nll", "holdout_mse_mean", "holdout_mse_elites", "seconds"])
    n_batches = int(np.ceil(len(train_idx) / cfg.batch_size))
    while True:
        epoch += 1
        model.train()
        order = np.stack([rng.permutation(train_idx) for _ in range(cfg.members)])  # [members, N]
        losses = []
        for b in tqdm(range(n_batches), desc=f"ensemble epoch {epoch}", disable=not progress, leave=False,
                      mininterval=2):
            idx = torch.from_numpy(order[:, b * cfg.batch_size:(b + 1) * cfg.batch_size])
            mean, logvar = model(obs_t[idx], act_t[idx])
            inv_var = torch.exp(-logvar)
            nll = (((mean - tgt_t[idx]) ** 2) * inv_var + logvar).mean(dim=(1, 2)).sum()
            loss = (nll + model.weight_decay_loss()
                    + cfg.logvar_bound_coef * (model.max_logvar.sum() - model.min_logvar.sum()))
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            losses.append(nll.item() / cfg.members)
        mse = holdout_mse(model, obs_t[hold_idx], act_t[hold_idx], tgt_t[hold_idx])
        improved = mse < best_mse * (1.0 - cfg.min_improvement)
        if improved.any():
            best_mse = np.where(improved, mse, best_mse)
            state = model.state_dict()
            for key, value in state.items():  # copy only the improved members' weights
                if key.startswith("mlp.") and value.shape[0] == cfg.members:
                    best_state[key][improved] = value[improved].clone()
                elif not key.startswith("mlp."):
                    best_state[key] = value.clone()
            stale = 0
        else:
            stale += 1
        elapsed = time.time() - start
        elite_mse = np.sort(best_mse)[: cfg.elites].mean()
        writer.row([epoch, float(np.mean(losses)), float(mse.mean()), float(elite_mse), round(elapsed, 1)])
        if progress:
            print(f"[ensemble] epoch {epoch}: train nll {np.mean(losses):.4f}, hold-out mse {mse.mean():.5f} "
                  f"(best elites {elite_mse:.5f}), {elapsed:.0f}s", flush=True)
        if (stale >= cfg.patience or (cfg.max_epochs and epoch >= cfg.max_epochs)
                or (cfg.max_minutes and elapsed > 60 * cfg.max_minutes)):
            break

    model.load_state_dict(best_state)
    model.elites.copy_(torch.from_numpy(np.argsort(best_mse)[: cfg.elites]))
    model.metadata = {"env_id": data.metadata.get("env_id"), "dataset_fingerprint": data.fingerprint(),
                      "dataset_policy": data.metadata.get("policy"), "transitions": len(data),
                      "epochs": epoch, "holdout_mse": best_mse.tolist(), "train_seconds": round(time.time() - start, 1)}
    return model.eval()


@torch.no_grad()
def holdout_mse(model: EnsembleDynamics, obs, act, targets) -> np.ndarray:
    model.eval()
    mean, _ = model(obs, act)
    return ((mean - targets) ** 2).mean(dim=(1, 2)).numpy()
