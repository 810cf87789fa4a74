"""Does the dynamics reward help? Measurements on held-out trajectories.

Among the filter's candidates for one (s, a):
- rank correlation between r_D and the negative true one-step error (positive = the filter prefers the
  more accurate candidates), next to the free baseline: closeness to the elites' mean prediction, each
  dimension scaled by the training data's std; the one-step error of each one's choice against a random
  candidate's;
- the authors' analysis: Pearson correlation of r_D with log(MAE), pooled over all candidates of all pairs;
- AUC of r_D separating real transitions from model samples.
Along open-loop rollouts of recorded action sequences:
- state error against horizon, filtered vs unfiltered;
- termination: how well a low chosen r_D flags the steps whose error is in the top quartile (AUROC),
  against the ensemble's disagreement, and both at a matched termination rate.

Everything runs on rollout.py's backends: the torch checkpoints of a bundle, its ONNX graphs when the
checkpoints are absent, or any other DynamicsBackend / RewardBackend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from .dataset import Dataset
from .metrics import auc
from .rollout import MODES, FilterConfig, FilteredDynamics

# Issue 9's bar for a reward that earns its cost, on data from policies it never saw.
TARGETS = {"termination_auroc": 0.75, "pooled_pearson": -0.3, "choice_vs_random": 0.9}


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


def scaled_rmse(x: np.ndarray, y: np.ndarray, obs_scale: np.ndarray) -> np.ndarray:
    """RMSE over the last axis, each dimension divided by the training data's std."""
    return np.sqrt((((x - y) / obs_scale) ** 2).mean(-1))


def open_loop(model: FilteredDynamics, data: Dataset, starts: np.ndarray, horizon: int, obs_scale: np.ndarray,
              seed: int = 0) -> tuple[dict, np.ndarray]:
    """Roll the model from recorded states along the recorded actions: its arrays [H, N] and state error [H, N]."""
    idx = starts[None, :] + np.arange(horizon)[:, None]  # [H, N]
    out = model.rollout(data.observations[starts], data.actions[idx], np.random.default_rng(seed))
    return out, scaled_rmse(out["next_obs"], data.next_observations[idx], obs_scale)


def policy_rollout(model: FilteredDynamics, true_dynamics, policy, starts: np.ndarray, horizon: int,
                   obs_scale: np.ndarray, seed: int = 0) -> tuple[dict, np.ndarray]:
    """Roll a policy through the model from start states [N, S], as policy learning does, and measure each
    step's one-step error against the true dynamics from the model's own state (a MuJoCo set_state there):
    the model's arrays [H, N] and that error [H, N]. Rows continue past a termination, so every step is judged."""
    rng = np.random.default_rng(seed)
    obs = np.asarray(starts, np.float32)
    out = {k: [] for k in ("next_obs", "score", "disagreement", "terminal", "alive")}
    errors, alive = [], np.ones(len(obs), dtype=bool)
    for _ in range(horizon):
        act = np.asarray(policy(obs), np.float32)
        step = model.step(obs, act, rng)
        true_next = true_dynamics.predict(obs, act)[0][0, :, : model.obs_dim]
        errors.append(scaled_rmse(step.next_obs, true_next, obs_scale))
        for key in ("next_obs", "score", "disagreement", "terminal"):
            out[key].append(getattr(step, key))
        out["alive"].append(alive.copy())
        alive &= ~step.terminal
        obs = step.next_obs
    return {k: np.stack(v) for k, v in out.items()}, np.stack(errors)


def error_curve(out: dict, err: np.ndarray) -> dict:
    """Mean and median error per horizon step, and the share of rollouts still trusted."""
    trusted = out["alive"] & ~out["terminal"]
    return {"rmse": err.mean(1).tolist(), "rmse_median": np.median(err, 1).tolist(),
            "trusted_fraction": trusted.mean(1).tolist()}


def flag_quality(signal: np.ndarray, positive: np.ndarray, rate: float) -> dict:
    """Flag the `rate` share of steps with the highest signal (ties broken at random): the share flagged, and
    their precision and recall."""
    k = int(round(rate * len(signal)))
    flagged = np.zeros(len(signal), dtype=bool)
    flagged[np.lexsort((np.random.default_rng(0).random(len(signal)), -signal))[:k]] = True
    hits = int((flagged & positive).sum())
    return {"flagged": k / len(signal), "precision": hits / k if k else None,
            "recall": hits / max(int(positive.sum()), 1)}


def termination_metrics(out: dict, err: np.ndarray, threshold: float, top: float = 0.25) -> dict:
    """Does a low chosen r_D flag the steps where the model is wrong? Positives: the rollout steps whose state
    error is in the top `top` share. Score -r_D against the ensemble's disagreement, by AUROC over all steps,
    by AUROC within each horizon step (free of the trend both share with the horizon), and at matched
    termination rates: the share of steps with r_D < threshold, and the share of positives.

    Every step counts, also those after a termination: the signals are judged here, not the returns.
    """
    signals = {"dynamics_reward": -out["score"], "disagreement": out["disagreement"]}  # [H, N] each
    positive = err >= np.quantile(err, 1 - top)
    per_step = err >= np.quantile(err, 1 - top, axis=1, keepdims=True)
    rates = {"r_D_below_threshold": float((out["score"] < threshold).mean()), "top_share": top}
    result = {"steps": int(err.size), "threshold": threshold, "positive_share": float(positive.mean()),
              "rates": rates, "auroc": {}, "auroc_within_step": {}, "at_rate": {}}
    steps = [h for h in range(len(err)) if 0 < per_step[h].sum() < err.shape[1]]  # those with both classes
    for name, s in signals.items():
        result["auroc"][name] = auc(s[positive], s[~positive])
        result["auroc_within_step"][name] = float(np.mean([auc(s[h][per_step[h]], s[h][~per_step[h]])
                                                           for h in steps]))
        result["at_rate"][name] = {r: flag_quality(s.ravel(), positive.ravel(), rate) for r, rate in rates.items()}
    return result


def by_error_quartile(out: dict, err: np.ndarray, data_mean: np.ndarray, obs_scale: np.ndarray) -> list[dict]:
    """The signals binned by the quartile of the true error, best quarter first: what each says where the model
    is right and where it is wrong, and how far from the data (the largest per-dimension distance from its mean,
    in its standard deviations; the median over the quarter's steps) the model's next states are there."""
    e = err.ravel()
    quartile = np.digitize(e, np.quantile(e, [0.25, 0.5, 0.75]))
    dist = (np.abs(out["next_obs"] - data_mean) / obs_scale).max(-1).ravel()
    score, disagreement = out["score"].ravel(), out["disagreement"].ravel()
    return [{"error": float(e[q].mean()), "r_D": float(score[q].mean()), "disagreement": float(disagreement[q].mean()),
             "distance_from_data": float(np.median(dist[q]))} for q in (quartile == k for k in range(4))]


def _rowwise_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman correlation per row of [N, C] arrays; NaN where a row is constant."""
    rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)
    rx -= rx.mean(1, keepdims=True)
    ry -= ry.mean(1, keepdims=True)
    denom = np.sqrt((rx ** 2).sum(1) * (ry ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (rx * ry).sum(1) / denom, np.nan)


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson correlation of two flat arrays; None when either is constant."""
    if x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def candidate_metrics(model: FilteredDynamics, reward, data: Dataset, count: int, obs_scale: np.ndarray,
                      seed: int = 0) -> dict:
    """Ranking power of r_D among the candidates of each (s, a) against the free baseline, the one-step gain of
    each one's choice, the pooled correlation with log error, and real-vs-model AUC.

    Scores come from the filter's own reward backend; `reward` is the torch DynamicsReward when there is one
    (it adds the unclipped mean logit), else None.
    """
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data), size=min(count, len(data)), replace=False)
    obs, act, nxt = data.observations[idx], data.actions[idx], data.next_observations[idx]
    cands, expected = (x[..., : model.obs_dim] for x in model.candidates(obs, act, rng)[:2])
    err = scaled_rmse(cands, nxt[:, None], obs_scale)  # [N, C]
    mae = np.abs(cands - nxt[:, None]).mean(-1)  # the authors' error, in the data's units
    rankers = {"score": model.reward.score(obs, act, cands),  # r_D
               "free_baseline": -scaled_rmse(cands, expected[:, None], obs_scale)}
    real_score = model.reward.score(obs, act, nxt[:, None])[:, 0]
    if reward is not None:
        import torch

        t = lambda x: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))  # noqa: E731
        with torch.no_grad():
            rankers["mean_logit"] = reward.mean_logit(t(obs), t(act), t(cands)).numpy()
            real_logit = reward.mean_logit(t(obs), t(act), t(nxt[:, None])).numpy()[:, 0]

    rows = np.arange(len(idx))
    random_error = float(err.mean())
    score = rankers["score"]
    pick = score.argmax(1)
    result = {
        "transitions": int(len(idx)),
        "candidates": int(cands.shape[1]),
        "onestep_error_random_candidate": random_error,
        "onestep_error_best_candidate": float(err.min(1).mean()),
        "pooled_pearson_score_log_mae": _pearson(score.ravel(), np.log(mae.ravel() + 1e-12)),
        "auc_score_real_vs_model": auc(real_score, score[:, 0]),
        "score_real_mean": float(real_score.mean()),
        "score_model_mean": float(score.mean()),
        "score_selected_mean": float(score[rows, pick].mean()),
        "share_selected_below_threshold": float((score[rows, pick] < model.cfg.threshold).mean()),
    }
    for name, values in rankers.items():
        rho = _rowwise_spearman(values, -err)
        chosen = float(err[rows, values.argmax(1)].mean())
        # Fully tied rows (all candidates clipped to the same value) give the filter no choice: count as 0.
        result[f"rank_corr_{name}"] = float(np.nan_to_num(rho).mean())
        result[f"rank_corr_{name}_tied_rows"] = float(np.isnan(rho).mean())
        result[f"onestep_error_selected_by_{name}"] = chosen
        result[f"selected_by_{name}_vs_random"] = chosen / random_error
    result["onestep_error_selected"] = result["onestep_error_selected_by_score"]
    if reward is not None:
        result["auc_logit_real_vs_model"] = auc(real_logit, rankers["mean_logit"][:, 0])
    return result


def snapshot_sweep(model: FilteredDynamics, reward, data: Dataset, counts: list[int],
                   transitions: int, obs_scale: np.ndarray, seed: int = 0) -> list[dict]:
    """What the number of averaged snapshots of a torch DynamicsReward buys (ranking, separation) and costs
    (scoring time)."""
    import time

    import torch

    from .dynamics_reward import TorchReward

    rows = []
    for k in counts:
        sub = reward.thin(k)
        sub_model = FilteredDynamics(model.dynamics, TorchReward(sub), model.cfg)
        metrics = candidate_metrics(sub_model, sub, data, transitions, obs_scale, seed)
        pick = np.arange(1000) % len(data)
        obs, act = torch.from_numpy(data.observations[pick]), torch.from_numpy(data.actions[pick])
        cands = obs.unsqueeze(1) + 0.01 * torch.randn(1000, 10, obs.shape[1])
        start = time.perf_counter()
        with torch.no_grad():
            for _ in range(3):
                sub(obs, act, cands)
        ms = (time.perf_counter() - start) / 3 * 1e3
        rows.append({"snapshots": sub.num_snapshots, "rank_corr": metrics["rank_corr_score"],
                     "tied_rows": metrics["rank_corr_score_tied_rows"],
                     "auc": metrics["auc_score_real_vs_model"],
                     "onestep_error_selected": metrics["onestep_error_selected"],
                     "ms_per_1000x10_candidates": ms})
    return rows


def load_backends(bundle: Path, threads: int = 1, onnx: bool = False):
    """The bundle's dynamics and reward backends, and its torch DynamicsReward (None when running ONNX).

    Torch checkpoints when the bundle has both and `onnx` is off; otherwise the exported graphs (a shipped
    bundle holds only those; an export may keep fewer reward snapshots than the checkpoint), on ONNX
    Runtime's CPU provider.
    """
    from .bundle import ENSEMBLE_ONNX, ENSEMBLE_PT, REWARD_ONNX, REWARD_PT

    if not onnx and (bundle / ENSEMBLE_PT).exists() and (bundle / REWARD_PT).exists():
        import torch

        from .dynamics_reward import DynamicsReward, TorchReward
        from .ensemble import EnsembleDynamics, TorchDynamics

        torch.set_num_threads(threads)
        reward = DynamicsReward.load(bundle / REWARD_PT)
        return TorchDynamics(EnsembleDynamics.load(bundle / ENSEMBLE_PT)), TorchReward(reward), reward
    from .runtime import OnnxDynamics, OnnxReward

    return OnnxDynamics(bundle / ENSEMBLE_ONNX, "cpu", threads), OnnxReward(bundle / REWARD_ONNX, "cpu", threads), None


def filter_models(dynamics, scorer) -> dict[str, FilteredDynamics]:
    """One rollout engine per mode (rollout.MODES), the filter with its default settings."""
    return {mode: FilteredDynamics(dynamics, scorer, FilterConfig(mode=mode)) for mode in MODES}


def measure_set(models: dict[str, FilteredDynamics], data: Dataset, obs_scale: np.ndarray, horizon: int = 50,
                starts: int = 200, transitions: int = 2000, seed: int = 0, reward=None) -> dict:
    """Every measurement on one data set: open-loop error per mode, termination, candidates."""
    first = segment_starts(data, horizon, starts, np.random.default_rng(seed))
    rollouts = {mode: open_loop(m, data, first, horizon, obs_scale, seed) for mode, m in models.items()}
    filt = models["filter"]
    return {"data_policy": data.metadata.get("policy"), "variant": data.metadata.get("variant", "nominal"),
            "transitions": len(data),
            "open_loop": {mode: error_curve(*r) for mode, r in rollouts.items()},
            "termination": termination_metrics(*rollouts["filter"], filt.cfg.threshold),
            "candidates": candidate_metrics(filt, reward, data, transitions, obs_scale, seed)}


def diagnose(bundle, train_data, eval_data: dict[str, str], horizon: int = 50, starts: int = 200,
             transitions: int = 2000, seed: int = 0, out_json=None, plot=None,
             snapshot_counts: list[int] | None = None, threads: int = 1, command: str | None = None,
             env_id: str | None = None) -> dict:
    """All measurements on the training data and each named evaluation data set (any format
    interop.load_dataset reads; `env_id` names the task of those that do not); JSON (+ PNG)."""
    from .bundle import read_card
    from .fileio import write_json
    from .interop import load_dataset

    bundle = Path(bundle)
    dynamics, scorer, reward = load_backends(bundle, threads)
    if snapshot_counts and reward is None:
        raise ValueError(f"the snapshot sweep needs the torch reward checkpoint, and {bundle} has only ONNX graphs")
    models = filter_models(dynamics, scorer)
    train = load_dataset(train_data, env_id)
    obs_scale = np.maximum(train.observations.std(0), 1e-6)
    sets = {"train": train, **{name: load_dataset(path, env_id) for name, path in eval_data.items()}}
    report = {"bundle": str(bundle), "backend": "torch" if reward is not None else "onnx", "command": command,
              "card": read_card(bundle), "horizon": horizon, "seed": seed, "train_data": str(train_data),
              "eval_data": dict(eval_data), "targets": TARGETS, "sets": {}}
    for name, data in sets.items():
        report["sets"][name] = measure_set(models, data, obs_scale, horizon, starts, transitions, seed, reward)
        if snapshot_counts:
            report["sets"][name]["snapshot_sweep"] = snapshot_sweep(
                models["filter"], reward, data, snapshot_counts, transitions, obs_scale, seed)
    report["summary"] = {name: _summary(r, horizon) for name, r in report["sets"].items()}
    if out_json:
        write_json(out_json, report)
    if plot:
        plot_report(report, plot)
    return report


def decisive(r: dict) -> dict:
    """The issue's decisive numbers for one data set, and which of its targets they meet."""
    c, t = r["candidates"], r["termination"]
    auroc = {"r_D": t["auroc"]["dynamics_reward"], "disagreement": t["auroc"]["disagreement"]}
    choice = {"r_D": c["selected_by_score_vs_random"], "free_baseline": c["selected_by_free_baseline_vs_random"]}
    pearson = c["pooled_pearson_score_log_mae"]
    return {
        "within_pair_spearman": {"r_D": c["rank_corr_score"], "free_baseline": c["rank_corr_free_baseline"]},
        "choice_error_vs_random": choice,
        "pooled_pearson_log_mae": pearson,
        "termination_auroc": auroc,
        "termination_auroc_within_step": {"r_D": t["auroc_within_step"]["dynamics_reward"],
                                          "disagreement": t["auroc_within_step"]["disagreement"]},
        "matched_rate": t["rates"]["r_D_below_threshold"],
        "precision_at_matched_rate": {k: t["at_rate"][s]["r_D_below_threshold"]["precision"]
                                      for k, s in (("r_D", "dynamics_reward"), ("disagreement", "disagreement"))},
        "targets_met": {
            "termination_auroc": auroc["r_D"] >= TARGETS["termination_auroc"] and auroc["r_D"] > auroc["disagreement"],
            "pooled_pearson": pearson is not None and pearson <= TARGETS["pooled_pearson"],
            "choice": choice["r_D"] <= TARGETS["choice_vs_random"] and choice["r_D"] <= choice["free_baseline"],
        },
    }


def decisive_table(report: dict) -> str:
    """The decisive numbers of every data set as a Markdown table (r_D / free baseline or disagreement)."""
    def f(x):
        return "-" if x is None else f"{x:.2f}"

    lines = ["| data (policy, robot) | within-pair Spearman r_D / free | choice error vs random r_D / free | "
             "pooled Pearson(r_D, log MAE) | termination AUROC r_D / disagreement (within step) | "
             "matched rate: share ended, precision r_D / disagreement | targets met |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in report["sets"].items():
        d = decisive(r)
        s, c, a, w, p = (d[k] for k in ("within_pair_spearman", "choice_error_vs_random", "termination_auroc",
                                        "termination_auroc_within_step", "precision_at_matched_rate"))
        met = [k for k, ok in d["targets_met"].items() if ok]
        lines.append(f"| {name} ({r['data_policy']}, {r['variant']}) | {f(s['r_D'])} / {f(s['free_baseline'])} | "
                     f"{f(c['r_D'])} / {f(c['free_baseline'])} | {f(d['pooled_pearson_log_mae'])} | "
                     f"{f(a['r_D'])} / {f(a['disagreement'])} ({f(w['r_D'])} / {f(w['disagreement'])}) | "
                     f"{d['matched_rate']:.3f}: {f(p['r_D'])} / {f(p['disagreement'])} | {', '.join(met) or 'none'} |")
    return "\n".join(lines)


def _summary(r: dict, horizon: int) -> dict:
    c = r["candidates"]
    at = [h for h in (1, 10, 25, 50) if h <= horizon]
    return {"rank_corr": round(c["rank_corr_score"], 3),
            **({"rank_corr_mean_logit": round(c["rank_corr_mean_logit"], 3)} if "rank_corr_mean_logit" in c else {}),
            "auc": round(c["auc_score_real_vs_model"], 3),
            "onestep_selected_vs_random": [round(c["onestep_error_selected"], 4),
                                           round(c["onestep_error_random_candidate"], 4)],
            **{f"rmse@{h}": {m: round(v["rmse"][h - 1], 4) for m, v in r["open_loop"].items()} for h in at},
            "decisive": decisive(r)}


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
    bars = {"rank corr (r_D, -error)": lambda r: r["candidates"]["rank_corr_score"],
            "rank corr (free baseline)": lambda r: r["candidates"]["rank_corr_free_baseline"],
            "termination AUROC r_D": lambda r: r["termination"]["auroc"]["dynamics_reward"],
            "termination AUROC disagreement": lambda r: r["termination"]["auroc"]["disagreement"],
            "AUC real vs model": lambda r: r["candidates"]["auc_score_real_vs_model"]}
    width = 0.8 / len(bars)
    for i, (label, value) in enumerate(bars.items()):
        ax.bar(x + (i - (len(bars) - 1) / 2) * width, [value(sets[n]) for n in names], width, label=label)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(x, names, rotation=30)
    ax.set(title="dynamics reward diagnostics", ylim=(-0.2, 1.0))
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
