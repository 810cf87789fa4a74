"""Does the dynamics reward help? Measurements on held-out trajectories.

- open-loop state error against horizon, filtered vs unfiltered rollouts along recorded action sequences;
- rank correlation, among the candidates of each (s, a), between r_D and the negative true one-step
  error (positive = the filter prefers the more accurate candidates);
- AUC of r_D separating real transitions from model samples.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata

from .dataset import Dataset
from .dynamics_reward import DynamicsReward
from .metrics import auc
from .rollout import FilteredDynamics


def segment_starts(data: Dataset, horizon: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Start indices of windows of `horizon` transitions that stay inside one episode."""
    ends = data.terminals | data.timeouts
    ends[-1] = True
    # Number of episode ends in [i, i + horizon - 1) must be zero for a valid window.
    cum = np.concatenate([[0], np.cumsum(ends)])
    i = np.arange(len(data) - horizon + 1)
    valid = i[(cum[i + horizon - 1] - cum[i]) == 0]
    if len(valid) == 0:
        raise ValueError(f"no episode segment of {horizon} steps in the data")
    return rng.choice(valid, size=min(count, len(valid)), replace=False)


def open_loop_error(model: FilteredDynamics, data: Dataset, starts: np.ndarray, horizon: int, obs_scale: np.ndarray,
                    seed: int = 0) -> dict:
    """Mean normalised RMSE of the predicted state per horizon step, and the share of rollouts still trusted."""
    idx = starts[None, :] + np.arange(horizon)[:, None]  # [H, N]
    out = model.rollout(data.observations[starts], data.actions[idx], np.random.default_rng(seed))
    err = np.sqrt((((out["next_obs"] - data.next_observations[idx]) / obs_scale) ** 2).mean(-1))  # [H, N]
    trusted = out["alive"] & ~out["terminal"]
    return {"rmse": err.mean(1).tolist(), "rmse_median": np.median(err, 1).tolist(),
            "trusted_fraction": trusted.mean(1).tolist()}


def _rowwise_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman correlation per row of [N, C] arrays; NaN where a row is constant."""
    rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)
    rx -= rx.mean(1, keepdims=True)
    ry -= ry.mean(1, keepdims=True)
    denom = np.sqrt((rx ** 2).sum(1) * (ry ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (rx * ry).sum(1) / denom, np.nan)


@torch.no_grad()
def candidate_metrics(model: FilteredDynamics, reward: DynamicsReward, data: Dataset, count: int,
                      obs_scale: np.ndarray, seed: int = 0) -> dict:
    """Ranking power of r_D among candidates, one-step gain of the filter, and real-vs-model AUC."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data), size=min(count, len(data)), replace=False)
    obs, act, nxt = data.observations[idx], data.actions[idx], data.next_observations[idx]
    cands = model.candidates(obs, act, rng)[0]
    cands = cands[..., : model.obs_dim]
    err = np.sqrt((((cands - nxt[:, None]) / obs_scale) ** 2).mean(-1))  # [N, C]
    t = lambda x: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))  # noqa: E731
    score = reward(t(obs), t(act), t(cands)).numpy()
    logit = reward.mean_logit(t(obs), t(act), t(cands)).numpy()
    real_score = reward(t(obs), t(act), t(nxt[:, None])).numpy()[:, 0]
    real_logit = reward.mean_logit(t(obs), t(act), t(nxt[:, None])).numpy()[:, 0]

    rho = _rowwise_spearman(score, -err)
    rho_logit = _rowwise_spearman(logit, -err)
    rows = np.arange(len(idx))
    pick = score.argmax(1)
    return {
        "transitions": int(len(idx)),
        "candidates": int(cands.shape[1]),
        # Fully tied rows (all candidates clipped to the same value) give the filter no choice: count as 0.
        "rank_corr_score": float(np.nan_to_num(rho).mean()),
        "rank_corr_score_tied_rows": float(np.isnan(rho).mean()),
        "rank_corr_mean_logit": float(np.nan_to_num(rho_logit).mean()),
        "onestep_error_selected": float(err[rows, pick].mean()),
        "onestep_error_random_candidate": float(err.mean()),
        "onestep_error_best_candidate": float(err.min(1).mean()),
        "onestep_error_selected_by_logit": float(err[rows, logit.argmax(1)].mean()),
        "auc_score_real_vs_model": auc(real_score, score[:, 0]),
        "auc_logit_real_vs_model": auc(real_logit, logit[:, 0]),
        "score_real_mean": float(real_score.mean()),
        "score_model_mean": float(score.mean()),
        "score_selected_mean": float(score[rows, pick].mean()),
        "share_selected_below_threshold": float((score[rows, pick] < model.cfg.threshold).mean()),
    }


def snapshot_sweep(model: FilteredDynamics, reward: DynamicsReward, data: Dataset, counts: list[int],
                   transitions: int, obs_scale: np.ndarray, seed: int = 0) -> list[dict]:
    """What the number of averaged snapshots buys (ranking, separation) and costs (scoring time)."""
    import time

    rows = []
    for k in counts:
        sub = reward.thin(k)
        metrics = candidate_metrics(model, sub, data, transitions, obs_scale, seed)
        pick = np.arange(1000) % len(data)
        obs, act = torch.from_numpy(data.observations[pick]), torch.from_numpy(data.actions[pick])
        cands = obs.unsqueeze(1) + 0.01 * torch.randn(1000, 10, obs.shape[1])
        start = time.perf_counter()
        for _ in range(3):
            sub(obs, act, cands)
        ms = (time.perf_counter() - start) / 3 * 1e3
        rows.append({"snapshots": sub.num_snapshots, "rank_corr": metrics["rank_corr_score"],
                     "tied_rows": metrics["rank_corr_score_tied_rows"],
                     "auc": metrics["auc_score_real_vs_model"],
                     "onestep_error_selected": metrics["onestep_error_selected"],
                     "ms_per_1000x10_candidates": ms})
    return rows


def diagnose(bundle, train_data, eval_data: dict[str, str], horizon: int = 50, starts: int = 200,
             transitions: int = 2000, seed: int = 0, out_json=None, plot=None,
             snapshot_counts: list[int] | None = None) -> dict:
    """All three measurements on the training data and each named evaluation data set; JSON (+ PNG)."""
    from pathlib import Path

    from .bundle import ENSEMBLE_PT, REWARD_PT, read_card
    from .ensemble import EnsembleDynamics, TorchDynamics
    from .fileio import write_json
    from .dynamics_reward import TorchReward
    from .rollout import FilterConfig

    bundle = Path(bundle)
    ensemble = EnsembleDynamics.load(bundle / ENSEMBLE_PT)
    reward = DynamicsReward.load(bundle / REWARD_PT)
    backend, scorer = TorchDynamics(ensemble), TorchReward(reward)
    models = {mode: FilteredDynamics(backend, scorer, FilterConfig(mode=mode))
              for mode in ("filter", "random_elite", "elite_mean")}
    train = Dataset.load(train_data)
    obs_scale = np.maximum(train.observations.std(0), 1e-6)
    sets = {"train": train, **{name: Dataset.load(path) for name, path in eval_data.items()}}
    report = {"bundle": str(bundle), "card": read_card(bundle), "horizon": horizon, "seed": seed, "sets": {}}
    for name, data in sets.items():
        rng = np.random.default_rng(seed)
        first = segment_starts(data, horizon, starts, rng)
        report["sets"][name] = {
            "data_policy": data.metadata.get("policy"), "transitions": len(data),
            "open_loop": {mode: open_loop_error(m, data, first, horizon, obs_scale, seed) for mode, m in models.items()},
            "candidates": candidate_metrics(models["filter"], reward, data, transitions, obs_scale, seed),
        }
        if snapshot_counts:
            report["sets"][name]["snapshot_sweep"] = snapshot_sweep(
                models["filter"], reward, data, snapshot_counts, transitions, obs_scale, seed)
    report["summary"] = {name: _summary(r, horizon) for name, r in report["sets"].items()}
    if out_json:
        write_json(out_json, report)
    if plot:
        plot_report(report, plot)
    return report


def _summary(r: dict, horizon: int) -> dict:
    c = r["candidates"]
    at = [h for h in (1, 10, 25, 50) if h <= horizon]
    return {"rank_corr": round(c["rank_corr_score"], 3), "rank_corr_mean_logit": round(c["rank_corr_mean_logit"], 3),
            "auc": round(c["auc_score_real_vs_model"], 3),
            "onestep_selected_vs_random": [round(c["onestep_error_selected"], 4),
                                           round(c["onestep_error_random_candidate"], 4)],
            **{f"rmse@{h}": {m: round(v["rmse"][h - 1], 4) for m, v in r["open_loop"].items()} for h in at}}


def plot_report(report: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .fileio import atomic_path

    sets = report["sets"]
    fig, axes = plt.subplots(1, len(sets) + 1, figsize=(4.2 * (len(sets) + 1), 3.6))
    for ax, (name, r) in zip(axes, sets.items()):
        for mode, v in r["open_loop"].items():
            ax.plot(np.arange(1, len(v["rmse"]) + 1), v["rmse"], label=mode)
        ax.set(title=f"{name} ({r['data_policy']})", xlabel="horizon", ylabel="normalised state RMSE", yscale="log")
        ax.legend(fontsize=8)
    names = list(sets)
    ax = axes[-1]
    x = np.arange(len(names))
    ax.bar(x - 0.2, [sets[n]["candidates"]["rank_corr_score"] for n in names], 0.4, label="rank corr (r_D, -error)")
    ax.bar(x + 0.2, [sets[n]["candidates"]["auc_score_real_vs_model"] for n in names], 0.4, label="AUC real vs model")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(x, names)
    ax.set(title="dynamics reward diagnostics", ylim=(-0.2, 1.0))
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
