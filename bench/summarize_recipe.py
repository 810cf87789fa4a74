"""The recipe-search table (bench/reward_recipe.sh): one row per dynamics-reward training option and seed.

    .venv/bin/python bench/summarize_recipe.py docs/results/reward_recipe

Each cell is the mean over the data sets from policies and a robot the reward never saw (expert, random, sine
gait, the perturbed robot under the medium policy); the issue's targets: termination AUROC of r_D >= 0.75 and
above the disagreement's, pooled Pearson(r_D, log error) <= -0.3, the filter's choice at most 0.9x a random
candidate's error and not worse than the free baseline's. The last column is measured where offline policy
learning needs the signal: the termination AUROC along the shipped offline policy's model rollouts
(along_policy_rollouts/, bench/filter_along_policy_rollouts.py). A second table gives mean ± std over seeds for the
rows run with more than one. Writes table.md beside the reports and prints it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from morec.fileio import atomic_path

UNSEEN = ("expert", "random", "sine", "medium_real")


def row(report: dict) -> dict:
    sets = [report["summary"][name]["decisive"] for name in UNSEEN if name in report["summary"]]
    mean = lambda f: float(np.mean([f(d) for d in sets]))  # noqa: E731
    return {"auroc_rd": mean(lambda d: d["termination_auroc"]["r_D"]),
            "auroc_disagreement": mean(lambda d: d["termination_auroc"]["disagreement"]),
            "pearson": mean(lambda d: d["pooled_pearson_log_mae"]),
            "choice_rd": mean(lambda d: d["choice_error_vs_random"]["r_D"]),
            "choice_free": mean(lambda d: d["choice_error_vs_random"]["free_baseline"]),
            "targets_met": sum(sum(d["targets_met"].values()) for d in sets), "targets": 3 * len(sets)}


def mean_std(seeds: list[dict], key: str, fmt: str = ".3f") -> str:
    values = [r[key] for r in seeds]
    return f"{np.mean(values):{fmt}} ± {np.std(values):.3f}"


def seed_summary(rows: dict[str, list[dict]]) -> list[str]:
    """Mean ± std over seeds of each row run with more than one seed."""
    lines = ["| row | seeds | termination AUROC r_D | disagreement | pooled Pearson | choice error vs random (r_D) "
             "| along the offline policy's rollouts: AUROC r_D |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, seeds in sorted(rows.items()):
        if len(seeds) < 2:
            continue
        along = mean_std(seeds, "along_rd") if all("along_rd" in r for r in seeds) else ""
        lines.append(f"| {name} | {len(seeds)} | {mean_std(seeds, 'auroc_rd')} | "
                     f"{mean_std(seeds, 'auroc_disagreement')} | {mean_std(seeds, 'pearson', '+.3f')} | "
                     f"{mean_std(seeds, 'choice_rd')} | {along} |")
    return lines


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results/reward_recipe")
    lines = ["| row | seed | termination AUROC r_D / disagreement | pooled Pearson | choice error vs random: "
             "r_D / free baseline | targets met | along the offline policy's rollouts: AUROC r_D / disagreement |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    rows: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*_seed*.json")):
        name, _, seed = path.stem.rpartition("_seed")
        r = row(json.loads(path.read_text()))
        along = folder / "along_policy_rollouts" / path.name
        auroc = json.loads(along.read_text())["termination"]["auroc"] if along.exists() else None
        along_cell = f"{auroc['dynamics_reward']:.3f} / {auroc['disagreement']:.3f}" if auroc else ""
        lines.append(f"| {name} | {seed} | {r['auroc_rd']:.3f} / {r['auroc_disagreement']:.3f} | {r['pearson']:+.3f} | "
                     f"{r['choice_rd']:.3f} / {r['choice_free']:.3f} | {r['targets_met']} of {r['targets']} "
                     f"| {along_cell} |")
        rows.setdefault(name, []).append(r | ({"along_rd": auroc["dynamics_reward"]} if auroc else {}))
    table = "\n".join(lines + ["", "Over seeds (mean ± std):", ""] + seed_summary(rows)) + "\n"
    with atomic_path(folder / "table.md") as tmp:
        tmp.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
