"""Markdown tables from the HalfCheetah dynamics-reward reports (bench/reward_pipeline.sh).

    .venv/bin/python bench/summarize_reward.py artifacts/bench/halfcheetah
"""

import json
import sys
from pathlib import Path


def main(root: Path) -> None:
    reports = {p.parent.name.removeprefix("reward_"): json.loads(p.read_text())
               for p in sorted(root.glob("reward_*/report.json"))}
    if not reports:
        sys.exit(f"no reward_*/report.json under {root}")
    default = reports.get("default") or next(iter(reports.values()))
    sets = list(default["sets"])

    print("Open-loop state error (normalised RMSE) along recorded action sequences, default reward:\n")
    print("| data (policy) | horizon | filter | random elite | elite mean | filter: rollouts still trusted |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in sets:
        r = default["sets"][name]
        ol = r["open_loop"]
        for h in (1, 10, 25, 50):
            if h <= len(ol["filter"]["rmse"]):
                print(f"| {name} ({r['data_policy']}) | {h} | {ol['filter']['rmse'][h - 1]:.3f} | "
                      f"{ol['random_elite']['rmse'][h - 1]:.3f} | {ol['elite_mean']['rmse'][h - 1]:.3f} | "
                      f"{ol['filter']['trusted_fraction'][h - 1]:.2f} |")

    print("\nCandidates of one (s, a) (10 per pair, 2000 pairs per data set), default reward:\n")
    print("| data | rank corr (r_D, -error) | tied sets | rank corr (mean logit) | one-step error: selected / "
          "random candidate / best | AUC real vs model |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in sets:
        c = default["sets"][name]["candidates"]
        print(f"| {name} | {c['rank_corr_score']:.3f} | {c['rank_corr_score_tied_rows']:.2f} | "
              f"{c['rank_corr_mean_logit']:.3f} | {c['onestep_error_selected']:.4f} / "
              f"{c['onestep_error_random_candidate']:.4f} / {c['onestep_error_best_candidate']:.4f} | "
              f"{c['auc_score_real_vs_model']:.3f} |")

    sweep_sets = [n for n in sets if "snapshot_sweep" in default["sets"][n]]
    if sweep_sets:
        print("\nSnapshot count (default run; scoring time for 1000 (s, a) x 10 candidates, torch, 1 thread):\n")
        print("| snapshots | " + " | ".join(f"rank corr {n}" for n in sweep_sets) + " | "
              + " | ".join(f"AUC {n}" for n in sweep_sets) + " | ms |")
        print("| --- " * (2 * len(sweep_sets) + 2) + "|")
        rows = zip(*(default["sets"][n]["snapshot_sweep"] for n in sweep_sets))
        for row in rows:
            print(f"| {row[0]['snapshots']} | " + " | ".join(f"{r['rank_corr']:.3f}" for r in row) + " | "
                  + " | ".join(f"{r['auc']:.3f}" for r in row) + f" | {row[0]['ms_per_1000x10_candidates']:.0f} |")

    print("\nAblations (same data and ensemble, seed 0): rank correlation / AUC / filter open-loop RMSE at 25\n")
    print("| variant | " + " | ".join(sets) + " |")
    print("| --- " * (len(sets) + 1) + "|")
    for variant, rep in reports.items():
        cells = []
        for name in sets:
            r = rep["sets"][name]
            cells.append(f"{r['candidates']['rank_corr_score']:.3f} / {r['candidates']['auc_score_real_vs_model']:.3f}"
                         f" / {r['open_loop']['filter']['rmse'][24]:.3f}")
        print(f"| {variant} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "artifacts/bench/halfcheetah"))
