"""Model-free offline-RL baselines (IQL, TD3+BC, CQL, BC) with d3rlpy, on morec-stack's own datasets.

One run trains one cell (algorithm x dataset x seed) and writes one result JSON in the schema that the
project's own grid runner writes, so one table script reads both:

    .venv-d3rlpy/bin/python bench/d3rlpy_baselines.py --algo iql --task halfcheetah \
        --data artifacts/bench/halfcheetah/medium.npz --seed 0 --steps 100000 --eval-every 10000 \
        --eval-episodes 5 --out docs/results/offline/halfcheetah-medium/iql_seed0.json

It runs in its own environment (bench/d3rlpy_setup.sh builds .venv-d3rlpy from requirements-d3rlpy.txt),
because d3rlpy 2.8 pins gymnasium 1.0.0 and the old gym package. For that reason it reads the dataset
file with numpy alone and never imports the project's `morec` package.

Dataset format (see ros2_ws/src/morec/morec/dataset.py): an .npz with observations [N,S], actions [N,A],
rewards [N], next_observations [N,S], terminals [N], timeouts [N] and `metadata`, a JSON string with at
least env_id. Episodes are stored contiguously and end at a terminal or a timeout.

Resumability: a finished result JSON is left alone (the cell is skipped) unless --force. While training,
a checkpoint (networks, optimisers, learning-rate schedules, random states, curve so far) is written next
to the result after every evaluation, and a rerun of the same command continues from it.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# D4RL reference returns (random policy, expert policy) used for the normalised score.
D4RL_REF = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
}
ENV_OF_TASK = {"halfcheetah": "HalfCheetah", "hopper": "Hopper", "walker2d": "Walker2d"}
METHOD_NAME = {"iql": "IQL", "td3bc": "TD3+BC", "cql": "CQL", "bc": "BC"}
ARRAYS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
CHECKPOINT_VERSION = 1


def normalized_score(task: str, ret: float) -> float:
    lo, hi = D4RL_REF[task]
    return 100.0 * (ret - lo) / (hi - lo)


# ---- data ------------------------------------------------------------------------------------------

def load_npz(path: Path) -> tuple[dict, dict]:
    """The arrays and the metadata of a morec dataset file (numpy only)."""
    with np.load(path, allow_pickle=False) as f:
        missing = [k for k in (*ARRAYS, "metadata") if k not in f.files]
        if missing:
            raise SystemExit(f"{path}: not a morec dataset, missing arrays {missing}")
        meta = json.loads(str(f["metadata"]))
        arrays = {k: f[k] for k in ARRAYS}
    arrays["observations"] = arrays["observations"].astype(np.float32)
    arrays["next_observations"] = arrays["next_observations"].astype(np.float32)
    arrays["actions"] = arrays["actions"].astype(np.float32)
    arrays["rewards"] = arrays["rewards"].astype(np.float32).reshape(-1)
    arrays["terminals"] = arrays["terminals"].astype(bool).reshape(-1)
    arrays["timeouts"] = arrays["timeouts"].astype(bool).reshape(-1)
    n = len(arrays["observations"])
    if n == 0 or any(len(v) != n for v in arrays.values()):
        raise SystemExit(f"{path}: arrays are empty or of different lengths")
    if "env_id" not in meta:
        raise SystemExit(f"{path}: metadata lacks env_id")
    return arrays, meta


def to_mdp_arrays(arrays: dict) -> tuple[dict, dict]:
    """Rows for d3rlpy.dataset.MDPDataset that keep every transition of the morec file.

    d3rlpy takes a transition's next observation from the following row of its episode, and so drops the
    last transition of an episode that ends without a terminal (a timeout). To keep that transition and its
    true next observation, every such episode gets one extra row after its last: the observation is the
    last next_observation, the reward 0 and the action a copy of the last one (both unused: the extra row
    is only ever read as a next observation); the timeout flag moves onto it. Terminal episodes need no
    extra row (their next observation is never bootstrapped from). An episode is also closed wherever the
    file's next_observations[i] is not observations[i+1] (data that is not contiguous), and at the file's
    end. Terminals take precedence over a timeout flagged on the same row.
    """
    obs, nxt = arrays["observations"], arrays["next_observations"]
    n = len(obs)
    terminals = arrays["terminals"].copy()
    ends = terminals | arrays["timeouts"]
    breaks = np.zeros(n, bool)
    breaks[:-1] = ~ends[:-1] & np.any(np.abs(nxt[:-1] - obs[1:]) > 1e-5 * (1.0 + np.abs(obs[1:])), axis=1)
    ends = ends | breaks
    ends[-1] = True
    open_ends = np.flatnonzero(ends & ~terminals)  # episodes cut without a terminal: one extra row each
    # Position of every original row in the padded arrays: shifted by the extra rows inserted before it.
    shift = np.zeros(n, np.int64)
    shift[open_ends[open_ends < n - 1] + 1] = 1
    pos = np.arange(n) + np.cumsum(shift)
    total = n + len(open_ends)
    out_obs = np.empty((total, obs.shape[1]), np.float32)
    out_act = np.empty((total, arrays["actions"].shape[1]), np.float32)
    out_rew = np.zeros(total, np.float32)
    out_term = np.zeros(total, np.float32)
    out_tout = np.zeros(total, np.float32)
    out_obs[pos] = obs
    out_act[pos] = arrays["actions"]
    out_rew[pos] = arrays["rewards"]
    out_term[pos] = terminals
    extra = pos[open_ends] + 1
    out_obs[extra] = nxt[open_ends]
    out_act[extra] = arrays["actions"][open_ends]
    out_tout[extra] = 1.0
    stats = {"transitions": int(n), "episodes": int(ends.sum()), "terminal_episodes": int(terminals.sum()),
             "discontinuities_split": int(breaks.sum())}
    return {"observations": out_obs, "actions": out_act, "rewards": out_rew, "terminals": out_term,
            "timeouts": out_tout}, stats


def make_dataset(arrays: dict):
    import d3rlpy

    rows, stats = to_mdp_arrays(arrays)
    dataset = d3rlpy.dataset.MDPDataset(**rows, action_space=d3rlpy.ActionSpace.CONTINUOUS,
                                        action_size=rows["actions"].shape[1])
    assert dataset.transition_count == stats["transitions"], (dataset.transition_count, stats)
    return dataset, stats


# ---- algorithms ------------------------------------------------------------------------------------

def make_algo(name: str, steps: int):
    """d3rlpy's MuJoCo settings for each algorithm (its reproduction scripts and the papers).

    Returns the algorithm and the hyperparameters chosen here (the full d3rlpy config is recorded too).
    """
    import d3rlpy

    if name == "iql":
        # IQL (Kostrikov et al. 2022) on locomotion: expectile 0.7, temperature 3.0, returns scaled to a
        # range of 1000, cosine-decayed actor learning rate over the whole run.
        hp = {"actor_learning_rate": 3e-4, "critic_learning_rate": 3e-4, "batch_size": 256, "expectile": 0.7,
              "weight_temp": 3.0, "max_weight": 100.0, "reward_scaler": "return-based x1000",
              "actor_lr_schedule": f"cosine annealing, T_max={steps}"}
        config = d3rlpy.algos.IQLConfig(
            actor_learning_rate=3e-4, critic_learning_rate=3e-4, batch_size=256, expectile=0.7,
            weight_temp=3.0, max_weight=100.0,
            actor_optim_factory=d3rlpy.optimizers.AdamFactory(
                lr_scheduler_factory=d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=steps)),
            reward_scaler=d3rlpy.preprocessing.ReturnBasedRewardScaler(multiplier=1000.0))
    elif name == "td3bc":
        # TD3+BC (Fujimoto & Gu 2021): alpha 2.5, standardised observations, policy delay 2, target noise.
        hp = {"actor_learning_rate": 3e-4, "critic_learning_rate": 3e-4, "batch_size": 256, "alpha": 2.5,
              "target_smoothing_sigma": 0.2, "target_smoothing_clip": 0.5, "update_actor_interval": 2,
              "observation_scaler": "standard"}
        config = d3rlpy.algos.TD3PlusBCConfig(
            actor_learning_rate=3e-4, critic_learning_rate=3e-4, batch_size=256, target_smoothing_sigma=0.2,
            target_smoothing_clip=0.5, alpha=2.5, update_actor_interval=2,
            observation_scaler=d3rlpy.preprocessing.StandardObservationScaler())
    elif name == "cql":
        # CQL (Kumar et al. 2020) as d3rlpy runs it on MuJoCo: 3x256 networks, fixed conservative weight 5.0
        # (no Lagrangian tuning), 10 sampled actions.
        hp = {"actor_learning_rate": 1e-4, "critic_learning_rate": 3e-4, "temp_learning_rate": 1e-4,
              "alpha_learning_rate": 0.0, "conservative_weight": 5.0, "n_action_samples": 10,
              "batch_size": 256, "hidden_units": [256, 256, 256]}
        encoder = d3rlpy.models.encoders.VectorEncoderFactory([256, 256, 256])
        config = d3rlpy.algos.CQLConfig(
            actor_learning_rate=1e-4, critic_learning_rate=3e-4, temp_learning_rate=1e-4,
            actor_encoder_factory=encoder, critic_encoder_factory=encoder, batch_size=256,
            n_action_samples=10, alpha_learning_rate=0.0, conservative_weight=5.0)
    elif name == "bc":
        # Behaviour cloning with d3rlpy's defaults: deterministic policy, MSE, lr 1e-3, batch 100.
        config = d3rlpy.algos.BCConfig()
        hp = {"learning_rate": config.learning_rate, "batch_size": config.batch_size,
              "policy_type": config.policy_type}
    else:
        raise SystemExit(f"unknown algorithm {name!r}")
    return config.create(device="cpu:0"), hp


def fit_scalers(algo, dataset) -> None:
    """Fit the configured observation/action/reward scalers on the data, as d3rlpy's fit() does."""
    for scaler in (algo.config.observation_scaler, algo.config.action_scaler, algo.config.reward_scaler):
        if scaler is not None and not scaler.built:
            scaler.fit_with_transition_picker(dataset.episodes, dataset.transition_picker)


# ---- evaluation ------------------------------------------------------------------------------------

def evaluate(algo, env, task: str, episodes: int, seed: int) -> dict:
    """Deterministic policy, the same start states at every evaluation (reset seeds derived from --seed)."""
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=10_000 * (seed + 1) + ep)
        total, done = 0.0, False
        while not done:
            action = algo.predict(np.asarray(obs, np.float32)[None])[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    mean = float(np.mean(returns))
    return {"return_mean": mean, "return_std": float(np.std(returns)),
            "score_mean": float(np.mean([normalized_score(task, r) for r in returns]))}


# ---- files -----------------------------------------------------------------------------------------

def write_json_atomic(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; a result is an ordinary file
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(ckpt: Path, algo, state: dict) -> None:
    """Networks and optimisers (d3rlpy's save_model) plus our state; the state file is written last."""
    import torch

    ckpt.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".tmp", dir=ckpt)
    os.close(fd)
    algo.save_model(tmp)
    os.replace(tmp, ckpt / "model.d3")
    rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    fd, tmp = tempfile.mkstemp(prefix=".state.", suffix=".tmp", dir=ckpt)
    with os.fdopen(fd, "wb") as f:
        pickle.dump({**state, "rng": rng}, f)
    os.replace(tmp, ckpt / "state.pkl")


def load_checkpoint(ckpt: Path, key: dict):
    """Our state of a checkpoint written by the same command, or None."""
    try:
        with open(ckpt / "state.pkl", "rb") as f:
            state = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError):
        return None
    if state.get("version") != CHECKPOINT_VERSION or state.get("key") != key or not (ckpt / "model.d3").exists():
        return None
    return state


# ---- main ------------------------------------------------------------------------------------------

def dataset_label(task: str, data: Path, name: str | None) -> str:
    level = name if name else data.stem
    for prefix in (f"{task}-", f"{task}_"):
        if level.startswith(prefix):
            level = level[len(prefix):]
    return f"{task}-{level}"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", required=True, choices=sorted(METHOD_NAME))
    p.add_argument("--data", required=True, type=Path, help="a morec dataset .npz")
    p.add_argument("--task", required=True, choices=sorted(D4RL_REF))
    p.add_argument("--dataset-name", default=None,
                   help="the data's level, e.g. medium (default: the file name without .npz); "
                        "the result's dataset is TASK-LEVEL")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=100_000, help="gradient steps")
    p.add_argument("--eval-every", type=int, default=10_000)
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--note", default=None, help="free text recorded in config.note (e.g. why a budget was cut)")
    p.add_argument("--force", action="store_true", help="rerun even if --out holds a finished result")
    p.add_argument("--no-checkpoint", action="store_true", help="neither write nor resume a checkpoint")
    args = p.parse_args(argv)
    if args.steps <= 0 or args.eval_every <= 0 or args.eval_episodes <= 0:
        p.error("--steps, --eval-every and --eval-episodes must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    if out.exists() and not args.force:
        try:
            done = json.loads(out.read_text())
            if "final" in done:
                print(f"{out} holds a finished result; skipping (--force reruns)")
                return 0
        except (OSError, json.JSONDecodeError):
            pass

    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    import d3rlpy
    import gymnasium
    import torch

    torch.set_num_threads(threads)
    arrays, meta = load_npz(args.data)
    env_id = meta["env_id"]
    if not env_id.startswith(ENV_OF_TASK[args.task] + "-"):
        raise SystemExit(f"--task {args.task} does not match the data's env_id {env_id}")
    label = dataset_label(args.task, args.data, args.dataset_name)
    exe = os.path.relpath(sys.executable) if not os.path.relpath(sys.executable).startswith("..") else sys.executable
    command = shlex.join([exe, *sys.argv])

    d3rlpy.seed(args.seed)
    dataset, stats = make_dataset(arrays)
    del arrays
    algo, hp = make_algo(args.algo, args.steps)
    fit_scalers(algo, dataset)
    algo.build_with_dataset(dataset)

    env = gymnasium.make(env_id)
    env.action_space.seed(args.seed)
    if env.observation_space.shape[0] != dataset.dataset_info.observation_signature.shape[0][0]:
        raise SystemExit(f"{env_id} observations do not match the data's dimension")

    key = {"algo": args.algo, "data": str(args.data.resolve()), "fingerprint": meta.get("fingerprint"),
           "seed": args.seed, "steps": args.steps, "eval_every": args.eval_every,
           "eval_episodes": args.eval_episodes}
    ckpt = out.with_name(out.name + ".ckpt")
    curve, step, train_s = [], 0, 0.0
    state = None if (args.no_checkpoint or args.force) else load_checkpoint(ckpt, key)
    if state is not None:
        algo.load_model(str(ckpt / "model.d3"))
        step, curve, train_s = state["step"], state["curve"], state["train_s"]
        algo.set_grad_step(step)
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])
        torch.set_rng_state(state["rng"]["torch"])
        print(f"resuming {out.name} at step {step} from {ckpt}", flush=True)

    eval_points = list(range(args.eval_every, args.steps, args.eval_every)) + [args.steps]
    batch_size = algo.config.batch_size
    for point in eval_points:
        if point <= step:
            continue
        t0 = time.perf_counter()
        while step < point:
            algo.update(dataset.sample_transition_batch(batch_size))
            step += 1
        train_s += time.perf_counter() - t0
        result = evaluate(algo, env, args.task, args.eval_episodes, args.seed)
        curve.append({"step": step, **result})
        print(f"{METHOD_NAME[args.algo]} {label} seed {args.seed} step {step}: return "
              f"{result['return_mean']:.1f} +- {result['return_std']:.1f}, score {result['score_mean']:.1f} "
              f"({step / train_s:.1f} steps/s)", flush=True)
        if not args.no_checkpoint and step < args.steps:
            save_checkpoint(ckpt, algo, {"version": CHECKPOINT_VERSION, "key": key, "step": step,
                                         "curve": curve, "train_s": train_s})

    final = dict(curve[-1])
    final.pop("step")
    config = {**hp, "gamma": algo.config.gamma, "eval_every": args.eval_every,
              "eval_episodes": args.eval_episodes, "eval_policy": "deterministic", "env_id": env_id,
              "torch_threads": threads, "data": str(args.data), "data_fingerprint": meta.get("fingerprint"),
              **{f"data_{k}": v for k, v in stats.items()},
              "gymnasium": gymnasium.__version__, "torch": torch.__version__,
              "d3rlpy_config": json.loads(algo.config.serialize())}
    if args.note:
        config["note"] = args.note
    if state is not None:
        config["resumed"] = True
    write_json_atomic(out, {
        "method": METHOD_NAME[args.algo], "dataset": label, "seed": args.seed, "budget_steps": args.steps,
        "curve": curve, "final": final, "config": config, "steps_per_s": round(step / train_s, 2),
        "command": command, "library": f"d3rlpy {d3rlpy.__version__}"})
    shutil.rmtree(ckpt, ignore_errors=True)
    print(f"wrote {out}: {METHOD_NAME[args.algo]} return {final['return_mean']:.1f}, "
          f"score {final['score_mean']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
