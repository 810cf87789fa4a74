"""The offline-RL benchmark grid: every (method, dataset, seed) cell is an independent, resumable job.

A cell runs `morec train-policy` into artifacts/offline/<dataset>/<method>_seed<k>/ and, when it finishes,
writes docs/results/offline/<dataset>/<method>_seed<k>.json (config, seed, budget, learning curve). Finished
cells are skipped, interrupted ones resume from their last checkpoint, so the grid can be stopped and
restarted at any time. Cells run one after another here; `--ray auto|local|ADDRESS` submits them to a Ray
cluster instead (`pip install ray`), one CPU-bound cell per worker.

    .venv/bin/python bench/offline_grid.py --methods morec-mopo mopo --seeds 0 1 2
    .venv/bin/python bench/offline_grid.py --datasets halfcheetah-medium --steps 100000 --ray local
    .venv/bin/python bench/offline_grid.py --seeds 0 --rollout-batch 1000   # any other flag goes to every cell
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# name -> (backbone, MOREC, further `morec train-policy` flags[, bundle in place of the dataset's])
ENDED_LONG = ["--rollout-horizon", "100", "--rollout-batch", "2000"]
# HalfCheetah bundles of the reward recipe search, the recipe's ensemble with one row's reward
# (bench/offline_reward_bundle.sh makes them): MOREC with a reward that flags model errors, its threshold
# calibrated on the data because a reward's scale depends on its training
RECIPE_BUNDLE = "artifacts/bench/halfcheetah/offline_bundles/{}"
METHODS = {"mopo": ("mopo", False, []), "morec-mopo": ("mopo", True, []), "mobile": ("mobile", False, []),
           "morec-mobile": ("mobile", True, []),
           # MOREC with its threshold at the data's 5% quantile of the chosen r_D, not at the absolute 0.6: a
           # reward's scale depends on its robot and training (0.6 ends 93% of Hopper's rollouts, 20% of HalfCheetah's)
           "morec-mopo-q05": ("mopo", True, ["--threshold-quantile", "0.05"]),
           # MOREC's long rollouts, ended where the ensemble disagrees more than on 99% of the data, not by r_D
           "mopo-disagreement-end": ("mopo", False, [*ENDED_LONG, "--end-quantile", "0.99"]),
           # the true dynamics in place of the model: what SAC on these rollouts reaches without model error
           "mopo-true-dynamics": ("mopo", False, ["--model", "simulator"]),
           # the end quantile's sensitivity; a name's folder is kept under the data set's runs and results
           **{f"sensitivity/mopo-disagreement-end-q{q.split('.')[1]}": (
               "mopo", False, [*ENDED_LONG, "--end-quantile", q]) for q in ("0.95", "0.999")},
           **{f"reward/morec-mopo-{row}-q05": (
               "mopo", True, ["--threshold-quantile", "0.05"], RECIPE_BUNDLE.format(row))
              for row in ("multistep_h50", "multistep_h50_distilled")},
           # the disagreement-ended control on the same (recipe) ensemble
           "reward/mopo-disagreement-end": ("mopo", False, [*ENDED_LONG, "--end-quantile", "0.99"],
                                            RECIPE_BUNDLE.format("multistep_h50"))}
# dataset name -> (data file, bundle, level); data files come from bench/task_data.sh <task>.
DATASETS = {"halfcheetah-medium": ("artifacts/bench/halfcheetah/medium.npz", "models/halfcheetah", "medium"),
            "hopper-medium": ("artifacts/bench/hopper/medium.npz", "models/hopper", "medium"),
            "walker2d-medium": ("artifacts/bench/walker2d/medium.npz", "models/walker2d", "medium")}


def cell_command(method: str, dataset: str, seed: int, steps: int, extra: list[str], root: Path, threads: int,
                 datasets: dict = DATASETS) -> tuple[list[str], Path]:
    backbone, morec, flags, *own_bundle = METHODS[method]
    data, bundle, level = datasets[dataset]
    bundle = own_bundle[0] if own_bundle else bundle
    run = root / "artifacts" / "offline" / dataset / f"{method}_seed{seed}"
    result = root / "docs" / "results" / "offline" / dataset / f"{method}_seed{seed}.json"
    cmd = [sys.executable, "-m", "morec.cli", "train-policy", "--bundle", str(root / bundle),
           "--data", str(root / data), "--level", level, "--backbone", backbone, "--out", str(run),
           "--result", str(result), "--seed", str(seed), "--threads", str(threads)]
    cmd += [] if morec else ["--no-morec"]
    cmd += ["--resume"] if (run / "checkpoint.pt").exists() else []
    cmd += ["--steps", str(steps), *flags, *extra]
    return cmd, result


def run_cell(cmd: list[str]) -> int:
    return subprocess.call(cmd)


def main(argv: list[str] | None = None) -> int:
    # allow_abbrev=False: a cell's flag (--seed) must not be taken for an abbreviation of the grid's (--seeds).
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=100_000, help="gradient steps per cell (the same for every method)")
    p.add_argument("--ray", help="submit cells to Ray: 'local' starts a local instance, else an address or 'auto'")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads per cell (1 keeps a cell fast beside other work on a small machine)")
    p.add_argument("--root", type=Path, default=ROOT, help="where artifacts/ and docs/results/ are")
    args, extra = p.parse_known_args(argv)  # the rest: `morec train-policy` flags for every cell

    cells = [(m, d, s) for s in args.seeds for d in args.datasets for m in args.methods]
    todo = []
    for cell in cells:
        cmd, result = cell_command(*cell, args.steps, extra, args.root, args.threads)
        print(f"{'done' if result.exists() else 'to run':>7}  {cell[0]} {cell[1]} seed {cell[2]}", flush=True)
        if not result.exists():
            todo.append(cmd)
    if args.ray:
        import ray

        ray.init(address=None if args.ray == "local" else args.ray, include_dashboard=False)
        try:
            remote = ray.remote(num_cpus=args.threads)(run_cell)
            codes = ray.get([remote.remote(cmd) for cmd in todo])
        finally:
            ray.shutdown()
    else:
        codes = [run_cell(cmd) for cmd in todo]
    failed = sum(code != 0 for code in codes)
    print(f"{len(todo) - failed} of {len(todo)} cells finished" + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
