"""The offline-RL benchmark table and learning curves from the committed result files.

    .venv/bin/python bench/offline_table.py [--results docs/results/offline] [--plot-dir docs/img]

Reads every <dataset>/<method>_seed<k>.json (ours from bench/offline_grid.py, the model-free baselines from
bench/d3rlpy_baselines.py), prints one Markdown table per dataset (D4RL-normalised score, mean +- std over the
seeds that ran, with their count and budget, and the mean of each run's last three evaluations, since single
evaluations of offline SAC swing widely; for the model-based rows the mean rollout length and for the MOREC
rows the share ended by the filter, both averaged over training) beside the behaviour policy and the online
SAC expert of models/behavior/<task>/, and draws the learning curves to <plot-dir>/offline_<dataset>.png.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from morec.behavior import load_checkpoints, pick_checkpoint
from morec.task_spec import load_task_spec

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["MOPO", "MOREC-MOPO", "MOREC-MOPO, threshold at a data quantile", "MOPO, ended by disagreement",
         "MOPO (true dynamics)", "MOBILE", "MOREC-MOBILE", "IQL", "TD3+BC", "CQL", "BC"]


def load_results(folder: Path, by_file_name: bool = False) -> dict[str, list[dict]]:
    """Runs by method: the name a run records, or (for the experiments' subfolders, whose runs may share one)
    the grid's name for it, from the file name."""
    by_method = defaultdict(list)
    for path in sorted(folder.glob("*_seed*.json")):
        result = json.loads(path.read_text())
        if result.get("final", {}).get("score_mean") is not None:
            by_method[path.name.rsplit("_seed", 1)[0] if by_file_name else result["method"]].append(result)
    return by_method


def mean_std(values) -> str:
    return f"{np.mean(values):.1f} ± {np.std(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}"


def table(dataset: str, by_method: dict[str, list[dict]]) -> str:
    task = load_task_spec(dataset.split("-")[0])
    checkpoints = load_checkpoints(ROOT / "models" / "behavior" / task.name)["checkpoints"]
    best = max(checkpoints, key=lambda c: c["return_mean"])
    rows = ["| method | D4RL score (last) | score, mean of last 3 evaluations | return (last) | seeds | gradient steps "
            "| rollout length | ended by filter |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for method in sorted(by_method, key=lambda m: ORDER.index(m) if m in ORDER else len(ORDER)):
        runs = by_method[method]
        scores = [r["final"]["score_mean"] for r in runs]
        returns = [r["final"]["return_mean"] for r in runs]
        budgets = sorted({r["budget_steps"] for r in runs})
        # Model-based runs log the rollouts at every evaluation: averaged over training, then over seeds.
        curves = [r["curve"] for r in runs if r["curve"] and "rollout_length" in r["curve"][0]]
        length = mean_std([np.mean([p["rollout_length"] for p in c]) for c in curves]) if curves else ""
        ended = (f"{np.mean([np.mean([p['ended_by_filter'] for p in c]) for c in curves]):.2f}"
                 if curves and (runs[0]["config"].get("morec") or runs[0]["config"].get("end_quantile")) else "")
        last3 = [np.mean([p["score_mean"] for p in r["curve"][-3:]]) for r in runs]
        rows.append(f"| {method} | {mean_std(scores)} | {mean_std(last3)} | {mean_std(returns)} | {len(runs)} | "
                    f"{', '.join(f'{b // 1000}k' for b in budgets)} | {length} | {ended} |")
    if dataset.endswith("-medium"):  # collected by the shipped medium checkpoint (bench/task_data.sh)
        behaviour = pick_checkpoint(ROOT / "models" / "behavior" / task.name, "medium")
        score, ret = task.normalized_score(behaviour["return_mean"]), behaviour["return_mean"]
        rows.append(f"| behaviour policy ({behaviour['policy']}) | {score:.1f} | | {ret:.1f} | | | | |")
    rows.append(f"| online SAC expert ({best['policy']}) | {task.normalized_score(best['return_mean']):.1f} | "
                f"| {best['return_mean']:.1f} | | | | |")
    return "\n".join(rows)


def plot(dataset: str, by_method: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from morec.fileio import atomic_path

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for method in sorted(by_method, key=lambda m: ORDER.index(m) if m in ORDER else len(ORDER)):
        curves = [r["curve"] for r in by_method[method]]
        n = min(len(c) for c in curves)
        steps = [p["step"] for p in curves[0][:n]]
        scores = np.array([[p["score_mean"] for p in c[:n]] for c in curves])
        ax.plot(steps, scores.mean(0), label=f"{method} ({len(curves)} seed{'s' * (len(curves) > 1)})")
        if len(curves) > 1:
            ax.fill_between(steps, scores.min(0), scores.max(0), alpha=0.2)
    ax.set(title=dataset, xlabel="gradient steps", ylabel="D4RL-normalised score")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=ROOT / "docs" / "results" / "offline")
    p.add_argument("--plot-dir", type=Path, default=ROOT / "docs" / "img")
    args = p.parse_args()
    for folder in sorted(d for d in args.results.iterdir() if d.is_dir()):
        # The benchmark's table, then one per experiment kept in a subfolder (sensitivity/, reward/)
        for sub in [folder, *sorted(d for d in folder.iterdir() if d.is_dir())]:
            by_method = load_results(sub, by_file_name=sub != folder)
            if not by_method:
                continue
            name = "_".join(sub.relative_to(args.results).parts)
            print(f"### {' / '.join(sub.relative_to(args.results).parts)}\n\n{table(folder.name, by_method)}\n")
            plot(name, by_method, args.plot_dir / f"offline_{name}.png")


if __name__ == "__main__":
    main()
