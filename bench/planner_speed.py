"""Speed of the planning stack on a shipped bundle: model steps, the filter's cost, planner latency, a peer.

    .venv/bin/python bench/planner_speed.py [--threads N] [--bundle DIR] [--out PATH]   (`make bench` runs it first)

Everything is measured in one run, so the ratios (achieved GFLOP/s against the matmul peak, filtered
against unfiltered, ours against pytorch-mppi) hold even when the absolute numbers drift with the load
of a shared machine. It works from the bundle's ONNX files alone; the torch checkpoints (.pt) are used
when present, else same-shape untrained torch networks stand in (speed does not depend on the weights).
Prints tables and writes JSON to artifacts/bench/speed.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from machine import cpu_model, usable_cores

from morec.bundle import ENSEMBLE_ONNX, ENSEMBLE_PT, REWARD_ONNX, REWARD_PT
from morec.collect import rollout_dataset
from morec.dynamics_reward import DynamicsReward, TorchReward
from morec.ensemble import EnsembleConfig, EnsembleDynamics, TorchDynamics
from morec.fileio import write_json
from morec.nn import StackedMLP
from morec.planners import make_planner
from morec.rollout import FilterConfig, FilteredDynamics
from morec.runtime import OnnxDynamics, OnnxPolicy, OnnxReward
from morec.task_spec import TaskSpec, load_task_spec

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Settings:
    task: str = "halfcheetah"
    bundle: Path = ROOT / "models" / "halfcheetah"
    checkpoints: Path = ROOT / "artifacts" / "bench" / "halfcheetah" / "reward_default"  # optional .pt files
    out: Path = ROOT / "artifacts" / "bench" / "speed.json"
    threads: int = 1  # torch and ONNX Runtime intra-op threads: what launch/params/tasks/halfcheetah.yaml uses
    matmul_size: int = 2048
    matmul_threads: tuple[int, ...] = (1, 2)
    batch: int = 400  # rows per model call in the model-step measurements: a planning workload's samples
    snapshots: tuple[int, ...] = (1, 5, 40)  # reward snapshot sweep (torch), capped at what the checkpoint holds
    # samples x horizon: the demo's settings (launch/params/tasks/halfcheetah.yaml), then "useful" budgets.
    budgets: tuple[tuple[int, int], ...] = ((100, 10), (400, 15), (400, 30))
    planners: tuple[str, ...] = ("mppi", "cem")
    # The demo's MPPI plans around this policy (launch/params/tasks/halfcheetah.yaml); None: no prior rows.
    prior: Path | None = ROOT / "models" / "behavior" / "halfcheetah" / "sac_50000.onnx"
    peer_budgets: tuple[tuple[int, int], ...] = ((100, 10), (400, 30))
    warmup: int = 1
    min_repeats: int = 3
    seconds: float = 2.0  # a measurement repeats until this much time has passed and min_repeats are done
    seed: int = 0


# ---- timing and FLOP counting ------------------------------------------------------------------------

def interleaved(fns: list, s: Settings) -> list[np.ndarray]:
    """Seconds per call of each fn() after warm-up (first calls pay for allocation and thread start-up).

    The functions take turns, so a change in the machine's background load hits all of them alike.
    """
    for fn in fns:
        for _ in range(s.warmup):
            fn()
    times, start = [[] for _ in fns], time.perf_counter()
    while len(times[0]) < s.min_repeats or time.perf_counter() - start < s.seconds:
        for fn, t in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
    return [np.asarray(t) for t in times]


def timed(fn, s: Settings) -> np.ndarray:
    return interleaved([fn], s)[0]


def mlp_flops(mlp: StackedMLP) -> int:
    """FLOPs (2 per multiply-add; biases and activations ignored) of one member of a stacked MLP on one row."""
    return sum(2 * layer.weight.shape[1] * layer.weight.shape[2] for layer in mlp.linear_layers())


def ensemble_flops(model: EnsembleDynamics, rows: int) -> int:
    """The graph runs every member, elites or not."""
    return model.cfg.members * rows * mlp_flops(model.mlp)


def reward_flops(model: DynamicsReward, rows: int, candidates: int) -> int:
    """The (s, a) branch runs once per row and snapshot; the s' - s branch and the head per candidate too."""
    d = model.disc
    return d.k * rows * (mlp_flops(d.sa_branch) + candidates * (mlp_flops(d.delta_branch) + mlp_flops(d.head)))


# ---- models ------------------------------------------------------------------------------------------

@dataclass
class Models:
    task: TaskSpec
    dynamics: OnnxDynamics
    reward: OnnxReward
    ensemble: EnsembleDynamics  # torch, for the torch rows and the peer comparison
    disc: DynamicsReward  # torch, for the snapshot sweep
    ensemble_shape: EnsembleDynamics  # the ONNX graphs' shapes, for FLOP counts
    reward_shape: DynamicsReward
    torch_weights: str


def load_models(s: Settings) -> Models:
    task = load_task_spec(s.task)
    # CPU explicitly: the question is whether 2 CPU cores keep up with the control period.
    dynamics = OnnxDynamics(s.bundle / ENSEMBLE_ONNX, "cpu", s.threads, task.obs_dim, task.action_dim)
    reward = OnnxReward(s.bundle / REWARD_ONNX, "cpu", s.threads, task.obs_dim, task.action_dim)
    meta = dynamics.meta
    hidden = tuple(meta["hidden"])
    ensemble_shape = EnsembleDynamics(task.obs_dim, task.action_dim, EnsembleConfig(
        members=meta["members"], elites=len(meta["elites"]), hidden=hidden, weight_decay=(0.0,) * (len(hidden) + 1)))
    ensemble_shape.elites.copy_(torch.as_tensor(meta["elites"]))
    reward_shape = DynamicsReward(task.obs_dim, task.action_dim, reward.meta["snapshots"],
                                  reward.meta.get("width", 1.0)).eval()
    pt_ensemble, pt_reward = s.checkpoints / ENSEMBLE_PT, s.checkpoints / REWARD_PT
    if pt_ensemble.exists() and pt_reward.exists():
        ensemble, disc = EnsembleDynamics.load(pt_ensemble), DynamicsReward.load(pt_reward)
        if ensemble.cfg.members > meta["members"]:  # the graph holds the elites only (morec export's default)
            ensemble = ensemble.elites_only()
        weights = f"checkpoints in {s.checkpoints}"
    else:
        ensemble, disc = ensemble_shape.eval(), reward_shape
        weights = "untrained, shaped like the ONNX graphs (no checkpoints found)"
    return Models(task, dynamics, reward, ensemble, disc, ensemble_shape, reward_shape, weights)


def start_states(task: TaskSpec, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Observations and actions from the simulator under random actions: states the models see in use."""
    data = rollout_dataset(task, None, n, seed=seed, policy_name="random", progress=False)
    return data.observations[:n].astype(np.float32), data.actions[:n].astype(np.float32)


# ---- measurements ------------------------------------------------------------------------------------

def machine_facts(s: Settings, m: Models) -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return {"cpu": cpu_model() or platform.processor(), "cores": os.cpu_count(), "usable_cores": usable_cores(),
            "avx512f": " avx512f" in cpuinfo, "load_average_1min": round(os.getloadavg()[0], 2),
            "torch": torch.__version__, "torch_threads": s.threads, "onnxruntime": ort.__version__,
            "ort_intra_op_threads": s.threads, "ort_providers": m.dynamics.session.get_providers()}


def matmul_peak(s: Settings) -> dict[int, dict]:
    """fp32 GFLOP/s of square torch matmuls, per thread count: the ceiling the models are compared to."""
    n = s.matmul_size
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = {}
    for threads in sorted({*s.matmul_threads, s.threads}):
        torch.set_num_threads(threads)
        t = timed(lambda: a @ b, s)
        out[threads] = {"median_gflops": 2 * n**3 / np.median(t) / 1e9, "best_gflops": 2 * n**3 / t.min() / 1e9,
                        "calls": len(t)}
    torch.set_num_threads(s.threads)
    return out


def model_row(name: str, backend: str, t: np.ndarray, rows: int, flops: int, peak: float, **extra) -> dict:
    median = float(np.median(t))
    return {"name": name, "backend": backend, "rows": rows, "ms": 1e3 * median, "steps_per_s": rows / median,
            "gflop_per_call": flops / 1e9, "gflops": flops / median / 1e9, "peak_fraction": flops / median / 1e9 / peak,
            "calls": len(t), **extra}


def model_steps(m: Models, s: Settings, obs: np.ndarray, act: np.ndarray, peak: float) -> list[dict]:
    """One batched call of each model and of each FilteredDynamics.step mode on `len(obs)` rows."""
    rng = np.random.default_rng(s.seed)
    b, rows = len(obs), []
    filtered = FilteredDynamics(m.dynamics, m.reward, FilterConfig(), is_terminal=m.task.is_terminal)
    cands = filtered.candidates(obs, act, rng)[0][..., : m.task.obs_dim]
    c = cands.shape[1]
    ens_flops = ensemble_flops(m.ensemble_shape, b)

    torch_dynamics = TorchDynamics(m.ensemble)
    rows.append(model_row("ensemble", "ort", timed(lambda: m.dynamics.predict(obs, act), s), b, ens_flops, peak))
    rows.append(model_row("ensemble", "torch", timed(lambda: torch_dynamics.predict(obs, act), s), b,
                          ensemble_flops(m.ensemble, b), peak))
    k = m.reward_shape.num_snapshots
    rows.append(model_row(f"reward {k} snap x {c} cand", "ort", timed(lambda: m.reward.score(obs, act, cands), s), b,
                          reward_flops(m.reward_shape, b, c), peak, snapshots=k, candidates=c))
    for k in sorted({k for k in s.snapshots if k <= m.disc.num_snapshots}):
        thin = TorchReward(m.disc.thin(k))
        rows.append(model_row(f"reward {k} snap x {c} cand", "torch", timed(lambda: thin.score(obs, act, cands), s), b,
                              reward_flops(thin.model, b, c), peak, snapshots=k, candidates=c))

    rows.append(model_row("filter: candidates only", "ort", timed(lambda: filtered.candidates(obs, act, rng), s), b,
                          ens_flops, peak))
    rows.append(model_row("step filter", "ort", timed(lambda: filtered.step(obs, act, rng), s), b,
                          ens_flops + reward_flops(m.reward_shape, b, c), peak, candidates=c))
    for mode in ("elite_mean", "random_elite"):
        plain = FilteredDynamics(m.dynamics, None, FilterConfig(mode=mode), is_terminal=m.task.is_terminal)
        rows.append(model_row(f"step {mode}", "ort", timed(lambda: plain.step(obs, act, rng), s), b, ens_flops, peak))

    # The controller rolls each plan's mean out once more for the prediction it publishes (Plan.states), after
    # the command is out: one row per call.
    h = max(horizon for _, horizon in s.budgets)
    mean_plan = np.repeat(act[:1, None], h, axis=0)  # [H, 1, A]
    rows.append(model_row(f"filtered rollout 1 row x {h}", "ort",
                          timed(lambda: filtered.rollout(obs[:1], mean_plan, rng), s), h,
                          h * (ensemble_flops(m.ensemble_shape, 1) + reward_flops(m.reward_shape, 1, c)), peak))
    return rows


def breakdown(rows: list[dict]) -> dict[str, float]:
    """Where a filtered step's time goes, from the medians above (separate runs: noisy, may not add up)."""
    ms = {(r["name"], r["backend"]): r["ms"] for r in rows}
    ort_reward = next(r["ms"] for r in rows if r["name"].startswith("reward") and r["backend"] == "ort")
    step, cands, predict = ms["step filter", "ort"], ms["filter: candidates only", "ort"], ms["ensemble", "ort"]
    return {"step_ms": step, "ensemble_ms": predict, "sampling_ms": cands - predict, "scoring_ms": ort_reward,
            "select_and_rest_ms": step - cands - ort_reward, "scoring_share": ort_reward / step,
            "filter_over_elite_mean": step / ms["step elite_mean", "ort"]}


class CountingModel(FilteredDynamics):
    """Counts the rows a planner pushes through the model: a filtered plan stops once no rollout is trusted."""

    rows = 0

    def step(self, obs, act, rng):
        self.rows += len(obs)
        return super().step(obs, act, rng)


def planner_latency(m: Models, s: Settings, obs: np.ndarray, peak: float) -> list[dict]:
    """Latency of plan() (warm-started, as the controller calls it) for each planner, budget and filter mode,
    and for MPPI around the prior policy as the demo runs it."""
    c = len(m.dynamics.elites) * FilterConfig.samples_per_elite
    prior = OnnxPolicy(s.prior, m.task, "cpu", s.threads) if s.prior else None
    runs = [(name, None) for name in s.planners] + ([("mppi", prior)] if prior else [])
    out = []
    for samples, horizon in s.budgets:
        for name, policy in runs:
            for filtered in (True, False):
                cfg = FilterConfig(mode="filter" if filtered else "elite_mean")
                model = CountingModel(m.dynamics, m.reward if filtered else None, cfg, is_terminal=m.task.is_terminal)
                planner = make_planner(name, model, m.task, prior=policy, samples=samples, horizon=horizon,
                                       seed=s.seed)
                t = timed(lambda: planner.plan(obs), s)
                rows_per_plan = model.rows / (s.warmup + len(t))
                # The prior's rollout is a row of the first batch; Plan.states is rolled out only when read.
                full_rows = planner.cfg.iterations * samples * horizon
                row_flops = ensemble_flops(m.ensemble_shape, 1)
                if filtered:
                    row_flops += reward_flops(m.reward_shape, 1, c)
                gflops = rows_per_plan * row_flops / float(np.mean(t)) / 1e9
                out.append({"planner": name + (" + prior" if policy else ""),
                            "iterations": planner.cfg.iterations, "samples": samples,
                            "horizon": horizon, "filtered": filtered, "plans": len(t),
                            "p50_ms": 1e3 * float(np.median(t)), "p99_ms": 1e3 * float(np.percentile(t, 99)),
                            "deadline_miss_rate": float(np.mean(t > m.task.control_period)),
                            "model_steps_per_s": rows_per_plan / float(np.mean(t)), "gflops": gflops,
                            "peak_fraction": gflops / peak, "simulated_fraction": rows_per_plan / full_rows})
    return out


class TimedDynamics(TorchDynamics):
    """Adds up the seconds spent in the ensemble's own forward passes."""

    seconds = 0.0

    def predict(self, obs, act):
        t0 = time.perf_counter()
        out = super().predict(obs, act)
        self.seconds += time.perf_counter() - t0
        return out


def peer_mppi(m: Models, s: Settings, obs: np.ndarray) -> list[dict]:
    """ms per command of pytorch-mppi and of our MPPI, both on the torch ensemble's elite mean, same workload,
    and how much of ours the ensemble's forward passes take: both planners make the same calls, so that share
    bounds how far below the peer any planner overhead work can bring ours."""
    from pytorch_mppi import MPPI as PeerMPPI  # a bench-only dependency (requirements-bench.txt)

    task, ens = m.task, m.ensemble
    timed_dynamics = TimedDynamics(ens)
    ours_model = FilteredDynamics(timed_dynamics, None, FilterConfig(mode="elite_mean"))
    low = torch.as_tensor(task.action_low, dtype=torch.float32)
    high = torch.as_tensor(task.action_high, dtype=torch.float32)

    def dynamics(state, action):
        mean, _ = ens.predict(state, action)
        return mean[ens.elites].mean(dim=0)[:, : task.obs_dim]

    def running_cost(next_state, action):
        # The task's own reward (numpy), as our planner uses it; v5 rewards ignore the first argument.
        return -torch.from_numpy(task.reward(next_state.numpy(), action.numpy(), next_state.numpy()).astype(np.float32))

    out = []
    for samples, horizon in s.peer_budgets:
        ours = make_planner("mppi", ours_model, task, samples=samples, horizon=horizon, seed=s.seed)
        sigma = ours.cfg.noise_std * (high - low) / 2
        peer = PeerMPPI(dynamics, running_cost, task.obs_dim, torch.diag(sigma**2), num_samples=samples,
                        horizon=horizon, lambda_=ours.cfg.temperature, u_min=low, u_max=high,
                        u_init=(low + high) / 2, device="cpu")
        state = torch.from_numpy(obs)

        def peer_command():
            with torch.no_grad():  # pytorch-mppi leaves autograd to the caller; our torch backend runs without it
                peer.command(state)

        timed_dynamics.seconds = 0.0
        t_peer, t_ours = interleaved([peer_command, lambda: ours.plan(obs)], s)
        model_s = timed_dynamics.seconds / (s.warmup + len(t_ours))
        out.append({"samples": samples, "horizon": horizon, "pytorch_mppi_ms": 1e3 * float(np.median(t_peer)),
                    "ours_ms": 1e3 * float(np.median(t_ours)),
                    "ours_model_share": model_s / float(np.mean(t_ours)),
                    "model_only_over_peer": model_s / float(np.median(t_peer)),
                    "ours_over_peer": float(np.median(t_ours) / np.median(t_peer)),
                    "commands": [len(t_peer), len(t_ours)]})
    return out


# ---- report ------------------------------------------------------------------------------------------

def table(title: str, headers: list[str], rows: list[list]) -> str:
    cells = [[f"{v:.3g}" if isinstance(v, float) and abs(v) < 100 else f"{v:.0f}" if isinstance(v, float) else str(v)
              for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = [title, "  ".join(h.rjust(w) for h, w in zip(headers, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(lines) + "\n"


def observations(res: dict) -> list[str]:
    """Plain-language notes on where the time goes, computed from this run's numbers."""
    b, models, plans = res["filtered_step_breakdown"], res["model_steps"], res["planner_latency"]
    ens = next(r for r in models if (r["name"], r["backend"]) == ("ensemble", "ort"))
    reward = next(r for r in models if r["name"].startswith("reward") and r["backend"] == "ort")
    flops = res["flops_per_row"]
    per_candidate = reward["candidates"] * flops["reward_per_snapshot_candidate"]
    notes = [
        f"A filtered step costs {b['filter_over_elite_mean']:.1f}x an unfiltered (elite_mean) one; scoring takes "
        f"{100 * b['scoring_share']:.0f}% of it.",
        f"Reward scoring reaches {reward['gflops']:.0f} GFLOP/s against the ensemble's {ens['gflops']:.0f}. Its s' - s "
        f"branch and head run once per candidate x snapshot "
        f"({100 * per_candidate / (per_candidate + flops['reward_sa_per_snapshot']):.0f}% of its FLOPs; only the "
        f"(s, a) branch is shared by the candidates).",
    ]
    sweep = sorted((r for r in models if r["name"].startswith("reward") and r["backend"] == "torch"),
                   key=lambda r: r["snapshots"])
    if len(sweep) > 1:
        per_snapshot = [r["ms"] / r["snapshots"] for r in sweep]
        grows = per_snapshot[-1] > 1.2 * per_snapshot[0]
        notes.append("Torch scoring, ms per snapshot at " + " / ".join(str(r["snapshots"]) for r in sweep)
            + " snapshots: " + " / ".join(f"{ms:.1f}" for ms in per_snapshot)
            + ("; the per-snapshot cost grows with the count: the [snapshots, rows x candidates, 256] activations "
               "likely outgrow the cache." if grows else "."))
    meets = [p for p in plans if p["filtered"] and p["p50_ms"] <= 1e3 * res["control_period_s"]]
    notes.append(f"Filtered plans within the {1e3 * res['control_period_s']:.0f} ms period at the median: "
                 + (", ".join(f"{p['planner']} {p['samples']}x{p['horizon']}" for p in meets) or "none") + ".")
    plan_rollout = next(r for r in models if r["name"].startswith("filtered rollout"))
    notes.append(f"Each plan() also rolls its new mean out for Plan.states, one row per model call: "
                 f"{plan_rollout['ms']:.0f} ms at horizon {plan_rollout['rows']} whatever the samples "
                 f"(single-row calls are likely bound by per-call overhead and reading the weights).")
    for p in res["peer"]:
        notes.append(f"pytorch-mppi vs ours at {p['samples']}x{p['horizon']} (torch elite mean): "
                     f"{p['pytorch_mppi_ms']:.0f} vs {p['ours_ms']:.0f} ms per command; the ensemble's forward "
                     f"passes take {100 * p['ours_model_share']:.0f}% of ours, {p['model_only_over_peer']:.2f}x the "
                     f"peer's whole command: no planner, however lean, gets below that on this model.")
    return notes


def report(res: dict) -> str:
    mach, peak = res["machine"], res["matmul_peak_gflops"]
    text = [f"planner speed on {res['bundle']} ({mach['cpu']}, {mach['cores']} cores, usable {mach['usable_cores']}, "
            f"AVX-512 {mach['avx512f']}, load average {mach['load_average_1min']}): torch {mach['torch']} "
            f"threads {mach['torch_threads']}, ONNX Runtime {mach['onnxruntime']} intra-op threads "
            f"{mach['ort_intra_op_threads']}. Torch weights: {res['torch_weights']}.",
            "Medians after warm-up; another job sharing the cores makes every number noisy, compare within this run.\n"]
    text.append(table(f"torch fp32 matmul {res['settings']['matmul_size']}^2",
                      ["threads", "median GFLOP/s", "best GFLOP/s"],
                      [[t, v["median_gflops"], v["best_gflops"]] for t, v in peak.items()]))
    text.append(table(f"model calls on {res['settings']['batch']} rows (peak = matmul median at "
                      f"{mach['torch_threads']} thread(s))",
                      ["model", "backend", "ms", "steps/s", "GFLOP/call", "GFLOP/s", "of peak"],
                      [[r["name"], r["backend"], r["ms"], r["steps_per_s"], r["gflop_per_call"], r["gflops"],
                        r["peak_fraction"]] for r in res["model_steps"]]))
    b = res["filtered_step_breakdown"]
    text.append(table("filtered step, where the time goes (ms)", ["step", "ensemble", "sampling", "scoring", "rest"],
                      [[b["step_ms"], b["ensemble_ms"], b["sampling_ms"], b["scoring_ms"], b["select_and_rest_ms"]]]))
    text.append(table(f"planner latency per plan() vs the {1e3 * res['control_period_s']:.0f} ms control period",
                      ["planner", "iters", "samples", "horizon", "filter", "plans", "p50 ms", "p99 ms", "miss rate",
                       "steps/s", "GFLOP/s", "simulated"],
                      [[p["planner"], p["iterations"], p["samples"], p["horizon"], "on" if p["filtered"] else "off",
                        p["plans"], p["p50_ms"], p["p99_ms"], p["deadline_miss_rate"], p["model_steps_per_s"],
                        p["gflops"], p["simulated_fraction"]] for p in res["planner_latency"]]))
    if res["peer"]:
        text.append(table("MPPI on the torch ensemble's elite mean: pytorch-mppi vs ours (ms per command)",
                          ["samples", "horizon", "pytorch-mppi", "ours", "ours/peer", "model share",
                           "model alone/peer"],
                          [[p["samples"], p["horizon"], p["pytorch_mppi_ms"], p["ours_ms"], p["ours_over_peer"],
                            p["ours_model_share"], p["model_only_over_peer"]]
                           for p in res["peer"]]))
    text.append("observations:\n" + "\n".join(f"- {n}" for n in res["observations"]))
    return "\n".join(text)


def log(what: str) -> None:
    print(f"[planner_speed] measuring {what}...", file=sys.stderr, flush=True)


def run(s: Settings) -> dict:
    torch.set_num_threads(s.threads)
    m = load_models(s)
    obs, act = start_states(m.task, s.batch, s.seed)
    res = {"bundle": str(s.bundle), "task": m.task.name, "control_period_s": m.task.control_period,
           "machine": machine_facts(s, m),
           "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(s).items()},
           "torch_weights": m.torch_weights,
           "flops_per_row": {"ensemble_member": mlp_flops(m.ensemble_shape.mlp),
                             "ensemble": ensemble_flops(m.ensemble_shape, 1),
                             "reward_sa_per_snapshot": mlp_flops(m.reward_shape.disc.sa_branch),
                             "reward_per_snapshot_candidate": mlp_flops(m.reward_shape.disc.delta_branch)
                             + mlp_flops(m.reward_shape.disc.head)}}
    log("matmul peak")
    res["matmul_peak_gflops"] = matmul_peak(s)
    peak = res["matmul_peak_gflops"][s.threads]["median_gflops"]
    log("model calls")
    res["model_steps"] = model_steps(m, s, obs, act, peak)
    res["filtered_step_breakdown"] = breakdown(res["model_steps"])
    log("planner latency")
    res["planner_latency"] = planner_latency(m, s, obs[0], peak)
    log("pytorch-mppi")
    res["peer"] = peer_mppi(m, s, obs[0]) if s.peer_budgets else []
    res["observations"] = observations(res)
    write_json(s.out, res)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=Settings.threads, help="torch and ONNX Runtime threads")
    parser.add_argument("--bundle", type=Path, default=Settings.bundle, help="bundle with the two ONNX graphs")
    parser.add_argument("--checkpoints", type=Path, default=Settings.checkpoints,
                        help="directory with the bundle's torch checkpoints, for the torch rows (optional)")
    parser.add_argument("--out", type=Path, default=Settings.out, help="JSON results")
    args = parser.parse_args()
    s = Settings(threads=args.threads, bundle=args.bundle, checkpoints=args.checkpoints, out=args.out)
    start = time.time()
    print(report(run(s)))
    print(f"\nwrote {s.out} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
