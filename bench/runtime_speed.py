"""ONNX Runtime call latency of a shipped bundle's models: CPU session tuning, CUDA with and without I/O
binding, and int8 / fp16 copies of the dynamics model (latency and one-step error against fp32).

    .venv/bin/python bench/runtime_speed.py [--bundle DIR] [--data NPZ] [--samples 100 300 400] [--out JSON]

Every comparison is interleaved in one run (the variants take turns call by call) and reported as the
median of many calls and its ratio to the current setting, so the ratios hold on a loaded machine.
Batch sizes are the planner's samples: the ensemble gets [samples, S] states, the dynamics reward
[samples, candidates, S] candidates (elites x samples_per_elite, as the filter asks). Without a CUDA
execution provider the CUDA rows are skipped, with a line saying so. Writes artifacts/bench/runtime_speed.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from morec.bundle import ENSEMBLE_ONNX, REWARD_ONNX
from morec.dataset import Dataset
from morec.diagnostics import scaled_rmse
from morec.fileio import write_json
from morec.rollout import FilterConfig
from morec.runtime import PRECISIONS, SessionRunner, make_session, read_metadata, reduced_precision_copy

ROOT = Path(__file__).resolve().parents[1]
CURRENT = dict(threads=1, optimization="all", parallel=False, io_binding=False)  # launch/params' planner threads
# Each CPU variant changes one thing against CURRENT.
CPU_VARIANTS = {
    "current (1 thread, ORT_ENABLE_ALL, sequential, plain run)": {},
    "2 intra-op threads": dict(threads=2),
    "ORT_ENABLE_BASIC": dict(optimization="basic"),
    "parallel execution mode": dict(parallel=True),
    "I/O binding, preallocated outputs": dict(io_binding=True),
}


@dataclass
class Timing:
    block: int = 10  # consecutive calls of one variant before the next takes its turn
    settle: int = 2  # calls dropped at the start of each block
    min_rounds: int = 3
    seconds: float = 3.0


def in_blocks(fns: list, timing: Timing) -> list[np.ndarray]:
    """Seconds per call of each fn(), the functions taking turns block by block.

    Turns keep a change in the machine's load fair to all; blocks, not single calls, because a session's
    thread pool keeps spinning for a while after its run and would slow whichever call came next (seen
    here: 1.9 ms alone, 10 ms right after a parallel-mode session). The first calls of a block are dropped.
    """
    times, start, rounds = [[] for _ in fns], time.perf_counter(), 0
    while rounds < timing.min_rounds or time.perf_counter() - start < timing.seconds:
        for fn, t in zip(fns, times):
            for i in range(timing.block):
                t0 = time.perf_counter()
                fn()
                if i >= timing.settle:
                    t.append(time.perf_counter() - t0)
        rounds += 1
    return [np.asarray(t) for t in times]


def runner(path: Path, device: str = "cpu", threads: int = 1, optimization: str = "all", parallel: bool = False,
           io_binding: bool = False) -> SessionRunner:
    session = make_session(path, device, intra_op_threads=threads, optimization=optimization, parallel=parallel)
    return SessionRunner(session, io_binding)


def feeds_for(meta: dict, data: Dataset, samples: int, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Inputs of the two planner calls, states and actions drawn from the data."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data), samples, replace=len(data) < samples)
    obs, act = data.observations[idx], data.actions[idx]
    candidates = len(meta["elites"]) * FilterConfig().samples_per_elite
    cands = obs[:, None] + 0.05 * rng.standard_normal((samples, candidates, obs.shape[1]), dtype=np.float32)
    return {ENSEMBLE_ONNX: {"obs": obs, "act": act}, REWARD_ONNX: {"obs": obs, "act": act, "candidates": cands}}


def compare(runners: dict[str, SessionRunner], feeds: dict[str, np.ndarray], timing: Timing) -> list[dict]:
    """Median call latency of each runner; ratio = its median / the first runner's (below 1: faster)."""
    names = list(runners)
    times = in_blocks([lambda r=runners[n]: r(feeds) for n in names], timing)
    base = float(np.median(times[0]))
    return [{"variant": n, "median_ms": 1e3 * float(np.median(t)), "p90_ms": 1e3 * float(np.quantile(t, 0.9)),
             "ratio": float(np.median(t)) / base, "calls": len(t)} for n, t in zip(names, times)]


def cpu_tuning(bundle: Path, feeds: dict, timing: Timing) -> list[dict]:
    rows = []
    for model, model_feeds in feeds.items():
        runners = {name: runner(bundle / model, **{**CURRENT, **change}) for name, change in CPU_VARIANTS.items()}
        for row in compare(runners, model_feeds, timing):
            rows.append({"model": model, "samples": len(model_feeds["obs"]), **row})
    return rows


def cuda_binding(bundle: Path, feeds: dict, timing: Timing) -> list[dict]:
    rows = []
    for model, model_feeds in feeds.items():
        runners = {"cpu, current": runner(bundle / model, **CURRENT),
                   "cuda, plain run": runner(bundle / model, "cuda", threads=0),
                   "cuda, I/O binding": runner(bundle / model, "cuda", threads=0, io_binding=True)}
        for row in compare(runners, model_feeds, timing):
            rows.append({"model": model, "samples": len(model_feeds["obs"]), **row})
    return rows


def precision(bundle: Path, meta: dict, copies: Path, data: Dataset, samples: list[int], states: int,
              timing: Timing, devices: list[str], seed: int) -> dict:
    """Latency of int8 / fp16 copies of the ensemble against fp32, and how far their predictions move."""
    src = bundle / ENSEMBLE_ONNX
    paths = {"fp32": src, **{p: reduced_precision_copy(src, copies / f"ensemble_{p}.onnx", p) for p in PRECISIONS}}
    latency = []
    for device in devices:
        for n in samples:
            model_feeds = feeds_for(meta, data, n, seed)[ENSEMBLE_ONNX]
            threads = CURRENT["threads"] if device == "cpu" else 0
            runners = {p: runner(path, device, threads, io_binding=device == "cuda") for p, path in paths.items()}
            for row in compare(runners, model_feeds, timing):
                latency.append({"device": device, "samples": n, **row})
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data), min(states, len(data)), replace=False)
    obs, act, nxt = data.observations[idx], data.actions[idx], data.next_observations[idx]
    obs_scale = np.asarray(meta["input_std"][: meta["obs_dim"]], np.float32)
    elites = np.asarray(meta["elites"])
    outputs = {p: runner(path, "cpu", threads=0)({"obs": obs, "act": act}) for p, path in paths.items()}
    ref_mean, ref_std = outputs["fp32"]
    ref_next = ref_mean[elites].mean(0)[:, : meta["obs_dim"]]
    error = {}
    for p, (mean, std) in outputs.items():
        pred_next = mean[elites].mean(0)[:, : meta["obs_dim"]]
        error[p] = {"states": len(idx),
                    # scaled as the model card's rmse@1: each dimension over the training data's std
                    "rmse_vs_data": float(scaled_rmse(pred_next, nxt, obs_scale).mean()),
                    "rmse_vs_fp32": float(scaled_rmse(pred_next, ref_next, obs_scale).mean()),
                    "max_abs_mean_diff": float(np.abs(mean - ref_mean).max()),
                    "median_rel_std_diff": float(np.median(np.abs(std - ref_std) / ref_std)),
                    "file_bytes": paths[p].stat().st_size}
    return {"latency": latency, "error": error}


def table(rows: list[dict], keys: list[str]) -> str:
    lines = []
    for r in rows:
        head = " ".join(f"{r[k]!s:>16}" for k in keys)
        lines.append(f"{head}  {r['variant']:<56} {r['median_ms']:8.3f} ms  x{r['ratio']:.2f}  ({r['calls']} calls)")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "models" / "halfcheetah")
    ap.add_argument("--data", type=Path, default=ROOT / "artifacts" / "bench" / "halfcheetah" / "medium_eval.npz",
                    help="states and actions for the inputs and the one-step error (a morec .npz dataset)")
    ap.add_argument("--samples", type=int, nargs="+", default=[100, 300, 400], help="planner samples per call")
    ap.add_argument("--states", type=int, default=4000, help="states for the one-step error")
    ap.add_argument("--seconds", type=float, default=3.0, help="time per interleaved comparison")
    ap.add_argument("--copies", type=Path, help="keep the int8 / fp16 copies here (default: a temporary folder)")
    ap.add_argument("--out", type=Path, default=ROOT / "artifacts" / "bench" / "runtime_speed.json")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for name in (ENSEMBLE_ONNX, REWARD_ONNX):
        if not (args.bundle / name).is_file():
            ap.error(f"{args.bundle / name} not found: "
                     f"--bundle takes a folder holding {ENSEMBLE_ONNX} and {REWARD_ONNX}")
    if not args.data.is_file():
        ap.error(f"dataset {args.data} not found: pass --data with a morec .npz of the bundle's task")
    data = Dataset.load(args.data)
    meta = read_metadata(make_session(args.bundle / ENSEMBLE_ONNX, "cpu"), args.bundle / ENSEMBLE_ONNX, "ensemble")
    if (data.obs_dim, data.act_dim) != (meta["obs_dim"], meta["act_dim"]):
        ap.error(f"{args.data} has obs/act dims {data.obs_dim}/{data.act_dim}, the bundle "
                 f"{meta['obs_dim']}/{meta['act_dim']}: pass data of the bundle's task")
    timing = Timing(seconds=args.seconds)
    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    res = {"onnxruntime": ort.__version__, "providers": ort.get_available_providers(), "bundle": str(args.bundle),
           "data": str(args.data), "current": CURRENT, "cpu_tuning": [], "cuda_binding": []}

    print(f"ONNX Runtime {ort.__version__}, providers {res['providers']}")
    print("\nCPU session tuning (ratio: median latency / the current setting's, same run)")
    for n in args.samples:
        rows = cpu_tuning(args.bundle, feeds_for(meta, data, n, args.seed), timing)
        res["cpu_tuning"] += rows
        print(table(rows, ["model", "samples"]))
    if cuda:
        print("\nCUDA, with and without I/O binding")
        for n in args.samples:
            rows = cuda_binding(args.bundle, feeds_for(meta, data, n, args.seed), timing)
            res["cuda_binding"] += rows
            print(table(rows, ["model", "samples"]))
    else:
        res["cuda_skipped"] = f"no CUDAExecutionProvider (ONNX Runtime offers {res['providers']})"
        print(f"\nCUDA: skipped, {res['cuda_skipped']}")

    with tempfile.TemporaryDirectory() as tmp:
        copies = args.copies or Path(tmp)
        res["precision"] = precision(args.bundle, meta, copies, data, args.samples, args.states, timing,
                                     ["cpu", "cuda"] if cuda else ["cpu"], args.seed)
    print("\nReduced precision of the ensemble: latency (ratio to fp32)")
    print(table(res["precision"]["latency"], ["device", "samples"]))
    print("\nOne-step error of the elites' mean next state (scaled RMSE, as the model card's rmse@1)")
    for p, e in res["precision"]["error"].items():
        print(f"  {p:5} vs data {e['rmse_vs_data']:.4f}  vs fp32 {e['rmse_vs_fp32']:.4f}  max |mean diff| "
              f"{e['max_abs_mean_diff']:.4f}  median rel std diff {e['median_rel_std_diff']:.4f}  "
              f"{e['file_bytes']} bytes  ({e['states']} states)")
    write_json(args.out, res)
    print(f"\nwrote {args.out}")
    return res


if __name__ == "__main__":
    main()
