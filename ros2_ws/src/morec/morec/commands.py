"""The commands of `morec` (morec.cli) that the learning core runs: their flags and what each does.

    morec behavior train     train SAC behaviour policies (checkpoints with their returns)
    morec collect            write an offline dataset from a behaviour policy
    morec dataset from-mcap  a recording (morec_record, ros2 bag record -s mcap) into a dataset
    morec train-dynamics     fit the probabilistic ensemble
    morec train-reward       learn the MOREC dynamics reward
    morec distill-reward     one discriminator in place of the snapshot history (one snapshot's scoring cost)
    morec export             export both to ONNX (with a parity check)
    morec export-policy      export a SAC behaviour policy to ONNX for the controller's policy mode
    morec train-policy       offline policy learning on filtered model rollouts (MOPO / MOBILE, +- MOREC)
    morec diagnose           does the filter help? error curves, ranking vs a free baseline, termination AUROC
    morec monitor            calibrate the sim-to-real gap monitor and measure it on a perturbed robot
    morec report             figures of a dataset, a bundle or a recording: PNGs and one self-contained HTML page
    morec up                 start the ROS 2 nodes of a launch config (sim, dynamics, filter, controller; morec.runner)

Each command's flags are the fields of a dataclass below, and a training command's flags include every
field of its config dataclass (EnsembleConfig, RewardConfig, ...): tyro turns them into typed flags with
their defaults and help, so the command line cannot drift from the configs. `morec COMMAND --help` lists them; a
config field's comment, inline or marked `#:` above it, is its help.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Union

import numpy as np
import tyro
from tyro import _errors
from tyro.conf import FlagCreatePairsOff, OmitArgPrefixes, Positional, Suppress, arg, subcommand

from .behavior import POLICY_FORMS, SACConfig
from .dynamics_reward import DistillConfig, RewardConfig
from .ensemble import EnsembleConfig
from .mcap_import import COMMAND_TOPIC, STATE_TOPIC
from .offline_rl import OfflineRLConfig

# Every command that reads a dataset opens it with interop.load_dataset.
DATA_HELP = "a morec .npz, a D4RL HDF5 file, or a Minari dataset (directory or id)"
ENV_ID_HELP = "the task of a D4RL or Minari dataset that does not name one (a Gymnasium id or task name)"


def _at_least_one(**values: int) -> None:
    for flag, value in values.items():
        if value < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")


# ---- the commands' flags: one dataclass per command, fields become flags (`env_id` -> `--env-id`) ------------


@dataclass(kw_only=True)
class Command:
    argv: list[str] = field(init=False, repr=False, default_factory=list)  # set by main(), not a flag

    @property
    def command_line(self) -> str:
        """Recorded in data and model cards."""
        return "morec " + shlex.join(self.argv)


@dataclass(kw_only=True)
class BehaviorTrain(Command):
    """train SAC with stable-baselines3, checkpointing with returns"""

    task: str
    out: str
    """directory for checkpoints and checkpoints.json"""
    cfg: Annotated[SACConfig, OmitArgPrefixes] = field(default_factory=SACConfig)
    """SACConfig (behavior.py)"""


@dataclass(kw_only=True)
class Collect(Command):
    """write an offline dataset"""

    task: str
    level: Literal["random", "medium", "expert", "medium-replay", "medium-expert", "sine"]
    """D4RL-style levels, or sine: an open-loop periodic gait (evaluation data)"""
    variant: str = "nominal"
    """robot variant of the task spec (its physics only: no sensor noise or delay)"""
    behavior: str | None = None
    """directory of `morec behavior train` (all levels but random)"""
    steps: int = 100_000
    seed: int = 0
    checkpoint: str | None = None
    """use this checkpoint file (e.g. sac_50000.zip) instead of choosing by return"""
    d4rl_reference: bool = False
    """medium = a third of the D4RL expert return instead of the best checkpoint's"""
    out: str
    """output .npz"""

    def __post_init__(self):
        _at_least_one(steps=self.steps)


@dataclass(kw_only=True)
class DatasetFromMcap(Command):
    """a recording's transitions (JointState + Float64MultiArray commands, paired by time) as a dataset;
    see docs/recording.md"""

    recording: Positional[str]
    """an .mcap file, or a rosbag2 folder (metadata.yaml + .mcap files)"""
    task: str | None = None
    """task spec mapping joints to observations, with reward and termination (default: the task morec_record
    stored in the recording)"""
    out: str
    """output .npz"""
    state_topic: str = STATE_TOPIC
    """sensor_msgs/JointState"""
    command_topic: str = COMMAND_TOPIC
    """std_msgs/Float64MultiArray"""
    recover: bool = False
    """read truncated files (a killed recorder's) up to their last complete chunk"""
    skip_inconsistent: bool = False
    """leave out segments inconsistent with the task's control period instead of failing"""


@dataclass(kw_only=True)
class TrainDynamics(Command):
    """fit the probabilistic ensemble into a bundle directory"""

    data: Annotated[str, arg(help=DATA_HELP)]
    env_id: Annotated[str | None, arg(help=ENV_ID_HELP)] = None
    bundle: str
    threads: int = 2
    """torch CPU threads"""
    cfg: Annotated[EnsembleConfig, OmitArgPrefixes] = field(default_factory=EnsembleConfig)
    """EnsembleConfig (ensemble.py)"""


@dataclass(kw_only=True)
class TrainReward(Command):
    """learn the MOREC dynamics reward into a bundle directory (next to its ensemble)"""

    data: Annotated[str, arg(help=DATA_HELP)]
    env_id: Annotated[str | None, arg(help=ENV_ID_HELP)] = None
    bundle: str
    threads: int = 2
    """torch CPU threads"""
    cfg: Annotated[RewardConfig, OmitArgPrefixes] = field(default_factory=RewardConfig)
    """RewardConfig (dynamics_reward.py)"""


@dataclass(kw_only=True)
class DistillReward(Command):
    """one discriminator that scores like the whole snapshot history"""

    bundle: str
    """bundle with ensemble.pt and dynamics_reward.pt (the teacher)"""
    data: Annotated[str, arg(help=f"the training data of the bundle: {DATA_HELP}")]
    env_id: Annotated[str | None, arg(help=ENV_ID_HELP)] = None
    out: str
    """new bundle directory (ensemble copied, distilled reward)"""
    snapshots: int | None = None
    """distil this many of the teacher's snapshots, evenly spaced (as `morec export --snapshots`)"""
    threads: int = 2
    """torch CPU threads"""
    cfg: Annotated[DistillConfig, OmitArgPrefixes] = field(default_factory=DistillConfig)
    """DistillConfig (dynamics_reward.py)"""


@dataclass(kw_only=True)
class Export(Command):
    """export a bundle's models to ONNX"""

    bundle: str
    all_members: bool = False
    """keep every ensemble member in the graph (default: the elites only, all the filter uses)"""
    snapshots: int | None = None
    """export only this many reward snapshots, evenly spaced (cheaper scoring; `morec diagnose --snapshot-sweep`
    shows the cost)"""


@dataclass(kw_only=True)
class ExportPolicy(Command):
    """export a SAC behaviour policy's deterministic actor to ONNX"""

    policy: str
    """stable-baselines3 SAC checkpoint .zip"""
    task: str
    """the task it was trained on (checked against its spaces)"""
    out: str
    """output .onnx"""


@dataclass(kw_only=True)
class TrainPolicy(Command):
    """offline SAC on filtered model rollouts (MOPO / MOBILE, +- MOREC)"""

    bundle: str
    """bundle with ensemble.onnx (and dynamics_reward.onnx for MOREC)"""
    data: Annotated[str, arg(help=f"the offline dataset, start states and the real share of batches: {DATA_HELP}")]
    env_id: Annotated[str | None, arg(help=ENV_ID_HELP)] = None
    level: str
    """dataset level (medium, medium-replay, ...): picks the penalty coefficient in sim/offline_rl/<task>.yaml"""
    out: str
    """run directory: log.csv, checkpoint.pt, policy.onnx, critic.onnx"""
    result: str | None = None
    """result JSON (default OUT/result.json)"""
    resume: bool = False
    """continue from OUT/checkpoint.pt"""
    model: Literal["bundle", "simulator"] = "bundle"
    """roll out through the bundle's ensemble, or through the task's simulator (the true dynamics: the upper
    bound of the pipeline, which separates what the learned model costs from what SAC itself achieves)"""
    cfg: Annotated[OfflineRLConfig, OmitArgPrefixes] = field(default_factory=OfflineRLConfig)
    """OfflineRLConfig (offline_rl.py); a flag not given takes the task's setting in sim/offline_rl/<task>.yaml
    (penalty coefficient by --level, rollout settings) where it has one, else the default shown"""


@dataclass(kw_only=True)
class Diagnose(Command):
    """measure the filter on held-out data (torch checkpoints of the bundle, else its ONNX graphs)"""

    bundle: str
    train_data: Annotated[str, arg(help=DATA_HELP)]
    eval_data: Annotated[tuple[str, ...], arg(metavar="NAME=PATH [NAME=PATH ...]")]
    """datasets as --train-data"""
    env_id: Annotated[str | None, arg(help=ENV_ID_HELP)] = None
    horizon: int = 50
    starts: int = 200
    transitions: int = 2000
    seed: int = 0
    out: str
    """report JSON"""
    plot: str | None = None
    """report PNG"""
    snapshot_sweep: Annotated[tuple[int, ...], arg(metavar="K [K ...]")] = ()
    """also measure rewards averaging only K of the snapshots (e.g. 1 5 10 40; torch bundles)"""
    threads: int = 1
    """torch / ONNX Runtime CPU threads"""

    def __post_init__(self):
        bad = [s for s in self.eval_data if "=" not in s] or ([] if self.eval_data else ["nothing"])
        if bad:
            raise ValueError(f"--eval-data takes NAME=PATH pairs, got {bad[0]!r}")


@dataclass(kw_only=True)
class Monitor(Command):
    """calibrate the gap monitor on the nominal robot, measure it on a perturbed one"""

    bundle: str
    task: str
    policies: Annotated[tuple[str, ...], arg(metavar="POLICY [POLICY ...]", help=(
        f"who drives the nominal robot for calibration (the first also drives the perturbed one): {POLICY_FORMS}"))
    ] = ("random",)
    unseen_policies: Annotated[tuple[str, ...], arg(metavar="POLICY [POLICY ...]")] = ()
    """policies the calibration does not see: false alarms on the nominal robot under each"""
    variants: tuple[str, ...] = ("real",)
    """perturbed robot variants of the task spec"""
    episodes: int = 10
    """episodes per set (calibration, nominal, perturbed)"""
    steps: int = 1000
    """steps per episode"""
    window: int = 50
    """transitions the monitor averages"""
    margin: float = 0.25
    """threshold margin beyond the calibration extreme"""
    threads: int = 1
    """ONNX Runtime threads"""
    seed: int = 0
    out: str | None = None
    """report JSON"""
    write_card: bool = False
    """store the thresholds in the bundle's card.json, where the filter node reads them"""
    calibration_data: tuple[str, ...] = ()
    """recorded datasets of the nominal robot (a real robot's, from `morec dataset from-mcap`) to calibrate on, their
    episodes as recorded; with them every set comes from recordings and the simulator is not used"""
    nominal_data: tuple[str, ...] = ()
    """recorded datasets of the nominal robot held out from the calibration: false alarms on them"""
    perturbed_data: tuple[str, ...] = ()
    """NAME=DATASET recordings of a changed robot: detection on each, as on the simulated variants"""

    def __post_init__(self):
        if not self.policies:
            raise ValueError("--policies needs at least one policy")
        if (self.nominal_data or self.perturbed_data) and not self.calibration_data:
            raise ValueError("--nominal-data and --perturbed-data need --calibration-data")
        bad = [item for item in self.perturbed_data if "=" not in item]
        if bad:
            raise ValueError(f"--perturbed-data takes NAME=DATASET, got {' '.join(bad)}")


@dataclass(kw_only=True)
class Report(Command):
    """PNGs and one self-contained HTML page: a dataset's coverage, a bundle's training and rollout error,
    a recording's predictions and monitor signals"""

    input: Annotated[Positional[str], arg(help=f"a recording (.mcap file or rosbag2 folder), a model bundle "
                                               f"directory, or a dataset ({DATA_HELP})")]
    out: str | None = None
    """output directory (default: <input name>_report)"""
    bundle: str | None = None
    """the bundle a dataset is judged against (its normaliser, rollout error), or whose thresholds a recording's
    monitor is drawn with (default models/<task>)"""
    reference: str | None = None
    """the bundle's training data, to compare a dataset's coverage with"""
    data: str | None = None
    """a dataset for a bundle's rollout error against horizon"""
    env_id: Annotated[str | None, arg(help=ENV_ID_HELP)] = None
    task: str | None = None
    """a recording's task (default: the one morec_record stored)"""
    start: float | None = None
    """recording: start of the predicted-vs-actual window, s into it (default: the first prediction)"""
    window: float = 5.0
    """recording: length of that window in s"""
    dims: tuple[int, ...] | None = None
    """recording: state dimensions drawn (default: the first 4)"""
    horizon: int = 50
    """rollout error: model steps"""
    starts: int = 100
    """rollout error: start states"""
    recover: bool = False
    """read a killed recorder's truncated files"""
    threads: int = 1
    """torch / ONNX Runtime CPU threads"""

    def __post_init__(self):
        _at_least_one(horizon=self.horizon, starts=self.starts)


def _group(name: str, description: str, *members) -> type:
    """A command with sub-commands (`morec behavior train`); the suppressed None lets a group have one member."""
    return Annotated[Union[(*members, Annotated[None, Suppress])], subcommand(name, description=description)]


COMMANDS = Union[
    _group("behavior", "behaviour policies", Annotated[BehaviorTrain, subcommand("train")]),
    Annotated[Collect, subcommand("collect")],
    _group("dataset", "datasets from other sources", Annotated[DatasetFromMcap, subcommand("from-mcap")]),
    Annotated[TrainDynamics, subcommand("train-dynamics")],
    Annotated[TrainReward, subcommand("train-reward")],
    Annotated[DistillReward, subcommand("distill-reward")],
    Annotated[Export, subcommand("export")],
    Annotated[ExportPolicy, subcommand("export-policy")],
    Annotated[TrainPolicy, subcommand("train-policy")],
    Annotated[Diagnose, subcommand("diagnose")],
    Annotated[Monitor, subcommand("monitor")],
    Annotated[Report, subcommand("report")],
]


# ---- what the commands do -------------------------------------------------------------------------------


def cmd_behavior_train(args: BehaviorTrain) -> int:
    from .behavior import train_sac
    from .task_spec import load_task_spec

    train_sac(load_task_spec(args.task), args.out, args.cfg)
    return 0


def cmd_collect(args: Collect) -> int:
    import torch

    from .behavior import load_checkpoints, load_policy, pick_checkpoint
    from .collect import SineGait, replay_buffer_dataset, rollout_dataset
    from .dataset import Dataset
    from .task_spec import load_task_spec

    task = load_task_spec(args.task)
    torch.manual_seed(args.seed)  # the SAC policies sample their actions with torch
    # One small batch per step (8 rows): a second thread only waits on the first, and on a busy machine that
    # made each call 48 ms instead of 1.3.
    torch.set_num_threads(1)

    def checkpoint(level: str) -> dict:
        if args.checkpoint:
            return next(r for r in load_checkpoints(args.behavior)["checkpoints"] if r["policy"] == args.checkpoint)
        return pick_checkpoint(args.behavior, level, task.d4rl_expert if args.d4rl_reference else None)

    task.variant(args.variant)  # an unknown name fails here, before any rollout

    def policy_data(level: str, steps: int, seed: int) -> Dataset:
        if level in ("random", "sine"):
            return rollout_dataset(task, SineGait(task, seed) if level == "sine" else None, steps, seed, level,
                                   variant=args.variant)
        ckpt = checkpoint(level)
        sac = load_policy(Path(args.behavior) / ckpt["policy"])
        # Stochastic actions, as D4RL's data: the SAC policy's own exploration noise.
        data = rollout_dataset(task, lambda o: sac.predict(o, deterministic=False)[0], steps, seed,
                               f"{level}:{ckpt['policy']}", variant=args.variant)
        data.metadata["behavior_checkpoint"] = ckpt
        return data

    if args.level in ("random", "medium", "expert", "sine"):
        data = policy_data(args.level, args.steps, args.seed)
    elif args.level == "medium-replay":
        if args.variant != "nominal":
            raise SystemExit("--variant applies to new rollouts; medium-replay replays the nominal robot's buffer")
        ckpt = checkpoint("medium")
        data = replay_buffer_dataset(task, Path(args.behavior) / ckpt["replay_buffer"],
                                     f"medium-replay:{ckpt['policy']}")
        data.metadata["behavior_checkpoint"] = ckpt
    elif args.level == "medium-expert":
        half = args.steps // 2
        parts = [policy_data("medium", half, args.seed), policy_data("expert", args.steps - half, args.seed + 1)]
        data = Dataset.concatenate(parts, {**parts[0].metadata, "policy": "medium-expert",
                                           "parts": [p.metadata["policy"] for p in parts]})
    else:
        raise SystemExit(f"unknown level {args.level!r}")
    data.metadata["command"] = args.command_line
    data.save(args.out)
    returns = data.episode_returns()
    print(f"wrote {args.out}: {len(data)} transitions, {len(returns)} episodes, "
          f"mean episode return {returns.mean():.1f}")
    return 0


def cmd_dataset_from_mcap(args: DatasetFromMcap) -> int:
    from .mcap_import import read_recording, recording_to_dataset
    from .task_spec import load_task_spec

    task = args.task
    if task is None:  # morec_record stores the task of the stack it recorded
        task = read_recording(args.recording, set(), recover=True).metadata.get("task")
        if not task:
            raise SystemExit(f"morec dataset: error: {args.recording} does not name its task: pass --task")
    data, report = recording_to_dataset(args.recording, load_task_spec(task), args.state_topic, args.command_topic,
                                        recover=args.recover, skip_inconsistent=args.skip_inconsistent)
    data.metadata["command"] = args.command_line
    data.save(args.out)
    print(f"wrote {args.out}: {report.summary()}")
    return 0


def cmd_train_dynamics(args: TrainDynamics) -> int:
    import torch

    from .bundle import ENSEMBLE_PT, update_card
    from .ensemble import train_ensemble
    from .interop import load_dataset

    torch.set_num_threads(args.threads)
    cfg = args.cfg
    data = load_dataset(args.data, args.env_id)
    bundle = Path(args.bundle)
    model = train_ensemble(data, cfg, log_csv=bundle / "ensemble_log.csv")
    model.save(bundle / ENSEMBLE_PT)
    update_card(bundle, "ensemble", {"data": str(args.data), "command": args.command_line,
                                     "config": dataclasses.asdict(cfg), **model.metadata})
    print(f"saved {bundle / ENSEMBLE_PT}: elites {model.elites.tolist()}, hold-out mse "
          f"{np.mean(sorted(model.metadata['holdout_mse'])[:cfg.elites]):.5f}")
    return 0


def cmd_train_reward(args: TrainReward) -> int:
    import torch

    from .bundle import ENSEMBLE_PT, REWARD_PT, update_card
    from .dynamics_reward import train_dynamics_reward
    from .ensemble import EnsembleDynamics
    from .interop import load_dataset
    from .task_spec import load_task_spec

    torch.set_num_threads(args.threads)
    data = load_dataset(args.data, args.env_id)
    bundle = Path(args.bundle)
    ensemble = EnsembleDynamics.load(bundle / ENSEMBLE_PT)
    space = load_task_spec(data.metadata["env_id"]).make_env().action_space
    reward = train_dynamics_reward(data, ensemble, args.cfg, log_csv=bundle / "reward_log.csv",
                                   action_bounds=(space.low, space.high))
    reward.save(bundle / REWARD_PT)
    update_card(bundle, "dynamics_reward", {"data": str(args.data), "command": args.command_line,
                                            **reward.metadata})
    print(f"saved {bundle / REWARD_PT}: {reward.num_snapshots} snapshots")
    return 0


def cmd_distill_reward(args: DistillReward) -> int:
    import shutil

    import torch

    from .bundle import ENSEMBLE_PT, REWARD_PT, read_card, update_card
    from .dynamics_reward import DynamicsReward, distill_dynamics_reward
    from .ensemble import EnsembleDynamics
    from .interop import load_dataset

    torch.set_num_threads(args.threads)
    source, out = Path(args.bundle), Path(args.out)
    teacher = DynamicsReward.load(source / REWARD_PT)
    if args.snapshots:
        teacher = teacher.thin(args.snapshots)
    ensemble = EnsembleDynamics.load(source / ENSEMBLE_PT)
    out.mkdir(parents=True, exist_ok=True)
    student = distill_dynamics_reward(teacher, load_dataset(args.data, args.env_id), ensemble, args.cfg,
                                      log_csv=out / "distill_log.csv")
    shutil.copy2(source / ENSEMBLE_PT, out / ENSEMBLE_PT)
    student.save(out / REWARD_PT)
    card = read_card(source)
    if "ensemble" in card:
        update_card(out, "ensemble", card["ensemble"])
    update_card(out, "dynamics_reward", {"distilled_from": str(source / REWARD_PT), "data": str(args.data),
                                         "command": args.command_line, **student.metadata})
    print(f"saved {out / REWARD_PT}: one discriminator distilled from {teacher.num_snapshots} snapshots")
    return 0


def cmd_export(args: Export) -> int:
    from .bundle import ENSEMBLE_ONNX, ENSEMBLE_PT, REWARD_ONNX, REWARD_PT, update_card
    from .dynamics_reward import DynamicsReward
    from .ensemble import EnsembleDynamics
    from .export import export_dynamics_reward, export_ensemble

    bundle = Path(args.bundle)
    ensemble = EnsembleDynamics.load(bundle / ENSEMBLE_PT)
    export_ensemble(ensemble if args.all_members else ensemble.elites_only(), bundle / ENSEMBLE_ONNX)
    written = [ENSEMBLE_ONNX]
    if (bundle / REWARD_PT).exists():
        reward = DynamicsReward.load(bundle / REWARD_PT)
        if args.snapshots:
            reward = reward.thin(args.snapshots)
        export_dynamics_reward(reward, bundle / REWARD_ONNX)
        written.append(REWARD_ONNX)
    else:
        print(f"note: {bundle} has no {REWARD_PT}, so only the ensemble was exported; the filter needs a dynamics "
              f"reward: train one with `morec train-reward --bundle {bundle} --data ...` and export again")
    update_card(bundle, "onnx", {"files": written, "command": args.command_line})
    print(f"exported {', '.join(str(bundle / w) for w in written)} (parity with torch checked)")
    return 0


def cmd_export_policy(args: ExportPolicy) -> int:
    from .export import export_policy
    from .task_spec import load_task_spec

    try:
        meta = export_policy(args.policy, args.out, load_task_spec(args.task))
    except ValueError as e:
        raise SystemExit(str(e)) from None
    print(f"exported {args.out}: obs [batch, {meta['obs_dim']}] -> action [batch, {meta['act_dim']}] "
          f"(parity with stable-baselines3 checked)")
    return 0


def cmd_train_policy(args: TrainPolicy) -> int:
    from .bundle import ENSEMBLE_ONNX, REWARD_ONNX
    from .export import export_offline_policy
    from .interop import load_dataset
    from .offline_rl import CHECKPOINT, MinCritic, OfflineTrainer, make_rollout_model, task_config, write_result
    from .runtime import OnnxDynamics, OnnxReward
    from .task_spec import load_task_spec

    out, bundle = Path(args.out), Path(args.bundle)
    if (out / CHECKPOINT).exists() and not args.resume:
        raise SystemExit(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    data = load_dataset(args.data, args.env_id)
    task = load_task_spec(data.metadata["env_id"])
    try:
        base = dataclasses.replace(args.cfg, **task_config(task, args.cfg.backbone, args.cfg.morec, args.level))
    except ValueError as e:
        raise CommandLineError(str(e)) from None
    # The task's settings replace the config's defaults but not the flags given: read the flags again over them.
    cfg = parse(args.argv, default=dataclasses.replace(args, cfg=base)).cfg
    if args.model == "simulator":
        from .mujoco_model import MujocoDynamics

        dynamics = MujocoDynamics(task)
    else:
        dynamics = OnnxDynamics(bundle / ENSEMBLE_ONNX, "cpu", cfg.threads, task.obs_dim, task.action_dim)
    reward = OnnxReward(bundle / REWARD_ONNX, "cpu", cfg.threads, task.obs_dim, task.action_dim) if cfg.morec else None
    trainer = OfflineTrainer(task, data, make_rollout_model(dynamics, reward, cfg, task), cfg, out,
                             resume=args.resume, dataset_name=f"{task.name}-{args.level}")
    trainer.run()
    export_offline_policy(trainer.actor, MinCritic(trainer.critic), out, task,
                          {"method": cfg.method, "model": args.model, "bundle": str(bundle), "data": str(args.data),
                           "seed": cfg.seed, "steps": trainer.step, "command": args.command_line})
    result = write_result(trainer, args.result or out / "result.json", args.command_line, args.model)
    final = result["final"]
    print(f"{cfg.method} on {result['dataset']}: return {final['return_mean']:.1f} +- {final['return_std']:.1f}"
          + (f", D4RL score {final['score_mean']:.1f}" if final["score_mean"] is not None else "")
          + f"; wrote {out / 'policy.onnx'}, {out / 'critic.onnx'}")
    return 0


def cmd_diagnose(args: Diagnose) -> int:
    from .diagnostics import decisive_table, diagnose

    report = diagnose(Path(args.bundle), Path(args.train_data), dict(s.split("=", 1) for s in args.eval_data),
                      horizon=args.horizon, starts=args.starts, transitions=args.transitions, seed=args.seed,
                      out_json=Path(args.out), plot=Path(args.plot) if args.plot else None,
                      snapshot_counts=list(args.snapshot_sweep), threads=args.threads, command=args.command_line,
                      env_id=args.env_id)
    print(json.dumps(report["summary"], indent=2))
    print(decisive_table(report))
    return 0


def cmd_monitor(args: Monitor) -> int:
    import torch

    from . import monitor
    from .behavior import policy_from_spec
    from .bundle import ENSEMBLE_ONNX, REWARD_ONNX, update_card
    from .collect import robot_episodes
    from .fileio import write_json
    from .interop import load_dataset
    from .runtime import OnnxDynamics, OnnxReward
    from .task_spec import load_task_spec

    task, bundle = load_task_spec(args.task), Path(args.bundle)
    dynamics = OnnxDynamics(bundle / ENSEMBLE_ONNX, "cpu", args.threads, task.obs_dim, task.action_dim)
    reward = OnnxReward(bundle / REWARD_ONNX, "cpu", args.threads, task.obs_dim, task.action_dim)
    obs_scale = np.asarray(dynamics.meta["input_std"][: task.obs_dim], np.float32)
    policies = {spec: policy_from_spec(spec, task, args.seed) for spec in [*args.policies, *args.unseen_policies]}

    def signals(policy: str, variant: str, seed: int) -> list[dict]:
        torch.manual_seed(seed)  # a SAC checkpoint samples its actions with torch
        episodes = robot_episodes(task, variant, policies[policy], args.episodes, args.steps, seed)
        return [monitor.transition_signals(dynamics, reward, obs_scale, **ep) for ep in episodes]

    def recorded(paths) -> list[dict]:
        episodes = [ep for path in paths for ep in monitor.recorded_episodes(load_dataset(path, task.env_id))]
        return [monitor.transition_signals(dynamics, reward, obs_scale, **ep) for ep in episodes]

    if args.calibration_data:  # a robot's recordings: no simulation
        calibration = monitor.calibrate(recorded(args.calibration_data), args.window, args.margin)
        held_out = recorded(args.nominal_data)
        perturbed = {name: recorded([path]) for name, _, path in (p.partition("=") for p in args.perturbed_data)}
        unseen = {}
    else:
        # Disjoint seeds: thresholds are calibrated on one set of nominal runs of every calibration policy and
        # judged on others, on the perturbed robot (under the first policy) and under policies never calibrated on.
        calibration = monitor.calibrate([ep for i, spec in enumerate(args.policies)
                                         for ep in signals(spec, "nominal", args.seed + i)], args.window, args.margin)
        held_out = [ep for i, spec in enumerate(args.policies)
                    for ep in signals(spec, "nominal", args.seed + 1000 + i)]
        perturbed = {variant: signals(args.policies[0], variant, args.seed + 2000 + 1000 * i)
                     for i, variant in enumerate(args.variants)}
        unseen = {spec: monitor.false_alarms(signals(spec, "nominal", args.seed + 500 + i), calibration)
                  for i, spec in enumerate(args.unseen_policies)}
    results = {name: monitor.evaluate(held_out, episodes, calibration, task.control_period)
               for name, episodes in perturbed.items()}
    sources = ({"calibration_data": args.calibration_data, "nominal_data": args.nominal_data,
                "perturbed_data": args.perturbed_data} if args.calibration_data else
               {"policies": args.policies, "episodes_per_set": args.episodes, "steps": args.steps, "seed": args.seed,
                "variants": {v: str(task.variant(v)) for v in args.variants}})
    report = {"task": task.env_id, "bundle": str(bundle), **sources, "calibration": dataclasses.asdict(calibration),
              "alarm_on": monitor.DEFAULT_ALARM_ON, "evaluation": results, "unseen_policies": unseen,
              "command": args.command_line}
    if args.out:
        write_json(Path(args.out), report)
    if args.write_card:
        update_card(bundle, "monitor", report)
    print(f"calibrated on {', '.join(args.calibration_data or args.policies)}")
    print(f"{'variant':>10} {'signal':>16} {'threshold':>10} {'AUC':>6} {'detected':>9} {'false alarms':>13} "
          f"{'time to detect':>15}")
    for variant, result in results.items():
        for name, row in result.items():
            ttd = f"{row['time_to_detect_s_median']:.2f} s" if row["time_to_detect_s_median"] is not None else "-"
            threshold = f"{row['threshold']:.4g}" if "threshold" in row else ""
            roc = f"{row['transition_auc']:.3f}" if "transition_auc" in row else ""
            false_alarms = "-" if row["false_alarm_rate"] is None else f"{row['false_alarm_rate']:.2f}"
            print(f"{variant:>10} {name:>16} {threshold:>10} {roc:>6} {row['detection_rate']:>9.2f} "
                  f"{false_alarms:>13} {ttd:>15}")
    for spec, row in unseen.items():
        print(f"nominal robot under {spec} (not calibrated on): false alarms in {row['episodes_alarmed']} of "
              f"{row['episodes']} episodes" + (f" ({', '.join(row['signals'])})" if row["signals"] else ""))
    return 0


def cmd_report(args: Report) -> int:
    from .report import ReportError, make_report

    try:
        page, report = make_report(args.input, args.out or f"{Path(args.input).name}_report", args.bundle,
                                   args.reference, args.data, args.env_id, args.task, args.start, args.window,
                                   list(args.dims) if args.dims else None, args.horizon, args.starts, args.recover,
                                   args.threads)
    except ReportError as err:
        raise SystemExit(f"morec report: error: {err}") from None
    for section in report.sections:
        print(f"{section.title}: {', '.join(str(p) for p in section.images)}")
    for reason in report.skipped:
        print(f"not drawn: {reason}")
    print(f"wrote {page} ({sum(len(s.images) for s in report.sections)} images inlined)")
    return 0


# What each command runs; a group's member is the command that runs.
RUNS = {BehaviorTrain: cmd_behavior_train, Collect: cmd_collect, DatasetFromMcap: cmd_dataset_from_mcap,
        TrainDynamics: cmd_train_dynamics, TrainReward: cmd_train_reward, DistillReward: cmd_distill_reward,
        Export: cmd_export, ExportPolicy: cmd_export_policy, TrainPolicy: cmd_train_policy, Diagnose: cmd_diagnose,
        Monitor: cmd_monitor, Report: cmd_report}


class CommandLineError(Exception):
    """A rejected command line, said in one line."""


def _one_line(event) -> None:
    """tyro's parse-error hook: turn the event into one line instead of tyro's multi-line box.

    `tyro._errors` is tyro's private, experimental hook (hence the exact pin in requirements.txt)."""
    ev = _errors
    if isinstance(event, ev.InstantiationFailure):  # a value of the wrong type, or a __post_init__ ValueError
        if event.argument is None:
            raise CommandLineError(event.message)
        default = event.argument.field.default
        example = " ".join(map(str, default)) if isinstance(default, tuple) else default
        hint = f" (default: {example})" if default not in (None, tyro.MISSING, tyro.MISSING_NONPROP, ()) else ""
        raise CommandLineError(f"{event.argument.display_name()} takes {event.argument.lowered.metavar}{hint}: "
                               f"{event.message}")
    if isinstance(event, ev.UnrecognizedArgs):
        hint = (": config fields are flags now, `--set key=a,b` is `--key a b`"
                if "--set" in event.tokens else " (the command's --help lists its flags)")
        raise CommandLineError(f"unrecognized arguments: {shlex.join(event.tokens)}{hint}")
    if isinstance(event, ev.MissingArgs):
        raise CommandLineError("missing " + ", ".join(a.arg.display_name() for a in event.missing_arguments))
    if isinstance(event, ev.MissingSubcommand):
        names = ", ".join(event.subcommand_spec.parser_from_name)
        raise CommandLineError(f"choose a command: {names}")
    if isinstance(event, ev.InvalidChoice):
        raise CommandLineError(f"{event.argument.display_name()}: "
                               f"{event.value!r} is not one of {', '.join(event.choices)}")
    if isinstance(event, ev.BadValue):
        raise CommandLineError(f"{event.argument.display_name()}: "
                               + ("needs a value" if event.offending_value is None
                                  else f"takes no value, got {event.offending_value!r}"))
    raise CommandLineError(f"refused ({type(event).__name__}): see the command's --help")


def parse(argv: list[str], default: Command | None = None) -> Command:
    """The command and its flags; `default` (of the same command) supplies the values of flags not given."""
    with _errors.on_parse_error(_one_line):
        if default is None:
            args = tyro.cli(COMMANDS, prog="morec", description=__doc__, args=argv, config=(FlagCreatePairsOff,))
        else:  # one command's flags again (argv[0] is its name), over other defaults; with both --x and
            # --no-x, as a default that changed from True to False would otherwise drop the --no-x just read
            args = tyro.cli(type(default), prog=f"morec {argv[0]}", args=argv[1:], default=default)
    args.argv = list(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    name = "morec" + (f" {argv[0]}" if argv and not argv[0].startswith("-") else "")  # errors name the command
    try:
        args = parse(argv)
    except CommandLineError as err:
        raise SystemExit(f"{name}: error: {err}") from None
    start = time.time()
    from .dataset import DatasetError
    from .runtime import ModelFileError
    from .task_spec import TaskSpecError

    try:
        code = RUNS[type(args)](args)
    except (DatasetError, TaskSpecError, ModelFileError, FileNotFoundError, CommandLineError) as err:
        # Bad input, not a bug: one line that names the problem, no traceback.
        raise SystemExit(f"{name}: error: {err}") from None
    print(f"[{name}] done in {time.time() - start:.1f}s")
    return code
