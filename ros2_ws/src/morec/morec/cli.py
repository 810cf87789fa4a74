"""`morec`: the command line of morec-stack's learning core.

    morec behavior train   train SAC behaviour policies (checkpoints with their returns)
    morec collect          write an offline dataset from a behaviour policy
    morec dataset from-mcap  a recording (morec_record, ros2 bag record -s mcap) into a dataset
    morec train-dynamics   fit the probabilistic ensemble
    morec train-reward     learn the MOREC dynamics reward
    morec distill-reward   one discriminator in place of the snapshot history (one snapshot's scoring cost)
    morec export           export both to ONNX (with a parity check)
    morec export-policy    export a SAC behaviour policy to ONNX for the controller's policy mode
    morec train-policy     offline policy learning on filtered model rollouts (MOPO / MOBILE, +- MOREC)
    morec diagnose         does the filter help? error curves, ranking vs a free baseline, termination AUROC (JSON + PNG)
    morec monitor          calibrate the sim-to-real gap monitor and measure it on a perturbed robot
    morec report           figures of a dataset, a bundle or a recording: PNGs and one self-contained HTML page
    morec demo             the end-to-end pipeline on the tiny task
    morec up               start the ROS 2 nodes of a launch config (sim, dynamics, filter, controller)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np


def apply_overrides(cfg, overrides: list[str]):
    """`key=value` pairs onto a config dataclass, with the field's own type (tuples as a,b,c)."""
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    changes = {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise SystemExit(f"bad --set {item!r}: expected key=value with key one of {sorted(fields)}")
        current = getattr(cfg, key)
        try:
            if isinstance(current, tuple):
                kind = type(current[0]) if current else float
                changes[key] = tuple(kind(v) for v in value.split(","))
            elif isinstance(current, bool):
                if value.lower() not in ("1", "true", "yes", "0", "false", "no"):
                    raise ValueError("expected true or false")
                changes[key] = value.lower() in ("1", "true", "yes")
            elif current is None:
                changes[key] = None if value.lower() == "none" else float(value)
            else:
                changes[key] = None if value.lower() == "none" else type(current)(value)
        except ValueError as err:
            example = ",".join(str(v) for v in current) if isinstance(current, tuple) else current
            raise SystemExit(f"bad --set {item!r}: {key} takes a value like {example!r} ({err})") from None
    try:
        return dataclasses.replace(cfg, **changes)
    except ValueError as err:  # the config's own validation (__post_init__)
        raise SystemExit(f"bad --set {' '.join(overrides)}: {err}") from None


def positive_int(text: str) -> int:
    """argparse type: a whole number above zero."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_behavior_train(args) -> int:
    from .behavior import SACConfig, train_sac
    from .task_spec import load_task_spec

    cfg = apply_overrides(SACConfig(total_steps=args.steps, seed=args.seed), args.set)
    train_sac(load_task_spec(args.task), args.out, cfg)
    return 0


def cmd_collect(args) -> int:
    import torch

    from .behavior import load_checkpoints, load_policy, pick_checkpoint
    from .collect import SineGait, replay_buffer_dataset, rollout_dataset
    from .dataset import Dataset
    from .task_spec import load_task_spec

    task = load_task_spec(args.task)
    torch.manual_seed(args.seed)  # the SAC policies sample their actions with torch

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
        data = replay_buffer_dataset(task, Path(args.behavior) / ckpt["replay_buffer"], f"medium-replay:{ckpt['policy']}")
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


def cmd_dataset_from_mcap(args) -> int:
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


def cmd_train_dynamics(args) -> int:
    import torch

    from .bundle import ENSEMBLE_PT, update_card
    from .ensemble import EnsembleConfig, train_ensemble
    from .interop import load_dataset

    torch.set_num_threads(args.threads)
    cfg = apply_overrides(EnsembleConfig(seed=args.seed), args.set)  # a bad override fails before the data loads
    data = load_dataset(args.data, args.env_id)
    bundle = Path(args.bundle)
    model = train_ensemble(data, cfg, log_csv=bundle / "ensemble_log.csv")
    model.save(bundle / ENSEMBLE_PT)
    update_card(bundle, "ensemble", {"data": str(args.data), "command": args.command_line,
                                     "config": dataclasses.asdict(cfg), **model.metadata})
    print(f"saved {bundle / ENSEMBLE_PT}: elites {model.elites.tolist()}, hold-out mse "
          f"{np.mean(sorted(model.metadata['holdout_mse'])[:cfg.elites]):.5f}")
    return 0


def cmd_train_reward(args) -> int:
    import torch

    from .bundle import ENSEMBLE_PT, REWARD_PT, update_card
    from .dynamics_reward import RewardConfig, train_dynamics_reward
    from .ensemble import EnsembleDynamics
    from .interop import load_dataset
    from .task_spec import load_task_spec

    torch.set_num_threads(args.threads)
    data = load_dataset(args.data, args.env_id)
    bundle = Path(args.bundle)
    ensemble = EnsembleDynamics.load(bundle / ENSEMBLE_PT)
    cfg = apply_overrides(RewardConfig(seed=args.seed), args.set)
    space = load_task_spec(data.metadata["env_id"]).make_env().action_space
    reward = train_dynamics_reward(data, ensemble, cfg, log_csv=bundle / "reward_log.csv",
                                   action_bounds=(space.low, space.high))
    reward.save(bundle / REWARD_PT)
    update_card(bundle, "dynamics_reward", {"data": str(args.data), "command": args.command_line,
                                            **reward.metadata})
    print(f"saved {bundle / REWARD_PT}: {reward.num_snapshots} snapshots")
    return 0


def cmd_distill_reward(args) -> int:
    import shutil

    import torch

    from .bundle import ENSEMBLE_PT, REWARD_PT, read_card, update_card
    from .dynamics_reward import DistillConfig, DynamicsReward, distill_dynamics_reward
    from .ensemble import EnsembleDynamics
    from .interop import load_dataset

    torch.set_num_threads(args.threads)
    source, out = Path(args.bundle), Path(args.out)
    teacher = DynamicsReward.load(source / REWARD_PT)
    if args.snapshots:
        teacher = teacher.thin(args.snapshots)
    ensemble = EnsembleDynamics.load(source / ENSEMBLE_PT)
    cfg = apply_overrides(DistillConfig(seed=args.seed), args.set)
    out.mkdir(parents=True, exist_ok=True)
    student = distill_dynamics_reward(teacher, load_dataset(args.data, args.env_id), ensemble, cfg,
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


def cmd_export(args) -> int:
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


def cmd_export_policy(args) -> int:
    from .export import export_policy
    from .task_spec import load_task_spec

    try:
        meta = export_policy(args.policy, args.out, load_task_spec(args.task))
    except ValueError as e:
        raise SystemExit(str(e)) from None
    print(f"exported {args.out}: obs [batch, {meta['obs_dim']}] -> action [batch, {meta['act_dim']}] "
          f"(parity with stable-baselines3 checked)")
    return 0


def cmd_train_policy(args) -> int:
    from .bundle import ENSEMBLE_ONNX, REWARD_ONNX
    from .export import export_offline_policy
    from .interop import load_dataset
    from .offline_rl import CHECKPOINT, MinCritic, OfflineRLConfig, OfflineTrainer, make_rollout_model, task_config
    from .offline_rl import write_result
    from .runtime import OnnxDynamics, OnnxReward
    from .task_spec import load_task_spec

    out, bundle = Path(args.out), Path(args.bundle)
    if (out / CHECKPOINT).exists() and not args.resume:
        raise SystemExit(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    data = load_dataset(args.data, args.env_id)
    task = load_task_spec(data.metadata["env_id"])
    morec = not args.no_morec
    try:
        cfg = OfflineRLConfig(backbone=args.backbone, morec=morec, seed=args.seed, threads=args.threads,
                              **task_config(task, args.backbone, morec, args.level))
    except ValueError as e:
        raise SystemExit(str(e)) from None
    cfg = apply_overrides(cfg, args.set)
    dynamics = OnnxDynamics(bundle / ENSEMBLE_ONNX, "cpu", args.threads, task.obs_dim, task.action_dim)
    reward = OnnxReward(bundle / REWARD_ONNX, "cpu", args.threads, task.obs_dim, task.action_dim) if morec else None
    trainer = OfflineTrainer(task, data, make_rollout_model(dynamics, reward, cfg, task), cfg, out,
                             resume=args.resume, dataset_name=f"{task.name}-{args.level}")
    trainer.run()
    export_offline_policy(trainer.actor, MinCritic(trainer.critic), out, task,
                          {"method": cfg.method, "bundle": str(bundle), "data": str(args.data), "seed": cfg.seed,
                           "steps": trainer.step, "command": args.command_line})
    result = write_result(trainer, args.result or out / "result.json", args.command_line)
    final = result["final"]
    print(f"{cfg.method} on {result['dataset']}: return {final['return_mean']:.1f} +- {final['return_std']:.1f}"
          + (f", D4RL score {final['score_mean']:.1f}" if final["score_mean"] is not None else "")
          + f"; wrote {out / 'policy.onnx'}, {out / 'critic.onnx'}")
    return 0


def cmd_diagnose(args) -> int:
    from .diagnostics import decisive_table, diagnose

    report = diagnose(Path(args.bundle), Path(args.train_data), dict(s.split("=", 1) for s in args.eval_data),
                      horizon=args.horizon, starts=args.starts, transitions=args.transitions, seed=args.seed,
                      out_json=Path(args.out), plot=Path(args.plot) if args.plot else None,
                      snapshot_counts=args.snapshot_sweep, threads=args.threads, command=args.command_line,
                      env_id=args.env_id)
    print(json.dumps(report["summary"], indent=2))
    print(decisive_table(report))
    return 0


def cmd_monitor(args) -> int:
    import torch

    from . import monitor
    from .behavior import policy_from_spec
    from .bundle import ENSEMBLE_ONNX, REWARD_ONNX, update_card
    from .collect import robot_episodes
    from .fileio import write_json
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

    # Disjoint seeds: thresholds are calibrated on one set of nominal runs of every calibration policy and
    # judged on others, on the perturbed robot (under the first policy) and under policies never calibrated on.
    calibration = monitor.calibrate([ep for i, spec in enumerate(args.policies)
                                     for ep in signals(spec, "nominal", args.seed + i)], args.window, args.margin)
    held_out = [ep for i, spec in enumerate(args.policies) for ep in signals(spec, "nominal", args.seed + 1000 + i)]
    results = {variant: monitor.evaluate(held_out, signals(args.policies[0], variant, args.seed + 2000 + 1000 * i),
                                         calibration, task.control_period) for i, variant in enumerate(args.variants)}
    unseen = {spec: monitor.false_alarms(signals(spec, "nominal", args.seed + 500 + i), calibration)
              for i, spec in enumerate(args.unseen_policies)}
    report = {"task": task.env_id, "bundle": str(bundle), "policies": args.policies,
              "episodes_per_set": args.episodes, "steps": args.steps, "seed": args.seed,
              "calibration": dataclasses.asdict(calibration),
              "variants": {v: str(task.variant(v)) for v in args.variants}, "alarm_on": monitor.DEFAULT_ALARM_ON,
              "evaluation": results, "unseen_policies": unseen, "command": args.command_line}
    if args.out:
        write_json(Path(args.out), report)
    if args.write_card:
        update_card(bundle, "monitor", report)
    print(f"calibrated on {', '.join(args.policies)}")
    print(f"{'variant':>10} {'signal':>16} {'threshold':>10} {'AUC':>6} {'detected':>9} {'false alarms':>13} "
          f"{'time to detect':>15}")
    for variant, result in results.items():
        for name, row in result.items():
            ttd = f"{row['time_to_detect_s_median']:.2f} s" if row["time_to_detect_s_median"] is not None else "-"
            threshold = f"{row['threshold']:.4g}" if "threshold" in row else ""
            roc = f"{row['transition_auc']:.3f}" if "transition_auc" in row else ""
            print(f"{variant:>10} {name:>16} {threshold:>10} {roc:>6} {row['detection_rate']:>9.2f} "
                  f"{row['false_alarm_rate']:>13.2f} {ttd:>15}")
    for spec, row in unseen.items():
        print(f"nominal robot under {spec} (not calibrated on): false alarms in {row['episodes_alarmed']} of "
              f"{row['episodes']} episodes" + (f" ({', '.join(row['signals'])})" if row["signals"] else ""))
    return 0


def cmd_report(args) -> int:
    from .report import ReportError, make_report

    try:
        page, report = make_report(args.input, args.out or f"{Path(args.input).name}_report", args.bundle,
                                   args.reference, args.data, args.env_id, args.task, args.start, args.window,
                                   args.dims, args.horizon, args.starts, args.recover, args.threads)
    except ReportError as err:
        raise SystemExit(f"morec report: error: {err}") from None
    for section in report.sections:
        print(f"{section.title}: {', '.join(str(p) for p in section.images)}")
    for reason in report.skipped:
        print(f"not drawn: {reason}")
    print(f"wrote {page} ({sum(len(s.images) for s in report.sections)} images inlined)")
    return 0


def cmd_up(args) -> int:
    from .runner import up

    return up(args.config, args.domain_id)


# Every command that reads a dataset opens it with interop.load_dataset.
DATA_HELP = "a morec .npz, a D4RL HDF5 file, or a Minari dataset (directory or id)"
ENV_ID_HELP = "the task of a D4RL or Minari dataset that does not name one (a Gymnasium id or task name)"


def main(argv: list[str] | None = None) -> int:
    from .behavior import POLICY_FORMS
    from .mcap_import import COMMAND_TOPIC, STATE_TOPIC

    parser = argparse.ArgumentParser(prog="morec", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    behavior = sub.add_parser("behavior", help="behaviour policies").add_subparsers(dest="action", required=True)
    p = behavior.add_parser("train", help="train SAC with stable-baselines3, checkpointing with returns")
    p.add_argument("--task", required=True)
    p.add_argument("--out", required=True, help="directory for checkpoints and checkpoints.json")
    p.add_argument("--steps", type=positive_int, default=300_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", nargs="*", help="SACConfig overrides key=value")
    p.set_defaults(func=cmd_behavior_train)

    p = sub.add_parser("collect", help="write an offline dataset")
    p.add_argument("--task", required=True)
    p.add_argument("--level", required=True,
                   choices=("random", "medium", "expert", "medium-replay", "medium-expert", "sine"),
                   help="D4RL-style levels, or sine: an open-loop periodic gait (evaluation data)")
    p.add_argument("--variant", default="nominal",
                   help="robot variant of the task spec (its physics only: no sensor noise or delay)")
    p.add_argument("--behavior", help="directory of `morec behavior train` (all levels but random)")
    p.add_argument("--steps", type=positive_int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", help="use this checkpoint file (e.g. sac_50000.zip) instead of choosing by return")
    p.add_argument("--d4rl-reference", action="store_true",
                   help="medium = a third of the D4RL expert return instead of the best checkpoint's")
    p.add_argument("--out", required=True, help="output .npz")
    p.set_defaults(func=cmd_collect)

    dataset = sub.add_parser("dataset", help="datasets from other sources").add_subparsers(dest="action", required=True)
    p = dataset.add_parser("from-mcap", help="a recording's transitions (JointState + Float64MultiArray commands, "
                                             "paired by time) as a dataset; see docs/recording.md")
    p.add_argument("recording", help="an .mcap file, or a rosbag2 folder (metadata.yaml + .mcap files)")
    p.add_argument("--task", help="task spec mapping joints to observations, with reward and termination "
                                  "(default: the task morec_record stored in the recording)")
    p.add_argument("--out", required=True, help="output .npz")
    p.add_argument("--state-topic", default=STATE_TOPIC, help="sensor_msgs/JointState")
    p.add_argument("--command-topic", default=COMMAND_TOPIC, help="std_msgs/Float64MultiArray")
    p.add_argument("--recover", action="store_true",
                   help="read truncated files (a killed recorder's) up to their last complete chunk")
    p.add_argument("--skip-inconsistent", action="store_true",
                   help="leave out segments inconsistent with the task's control period instead of failing")
    p.set_defaults(func=cmd_dataset_from_mcap)

    for name, func, cfg_name in (("train-dynamics", cmd_train_dynamics, "EnsembleConfig"),
                                 ("train-reward", cmd_train_reward, "RewardConfig")):
        p = sub.add_parser(name, help=f"train into a bundle directory ({cfg_name} overrides with --set)")
        p.add_argument("--data", required=True, help=DATA_HELP)
        p.add_argument("--env-id", help=ENV_ID_HELP)
        p.add_argument("--bundle", required=True)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
        p.add_argument("--set", nargs="*", help=f"{cfg_name} overrides key=value")
        p.set_defaults(func=func)

    p = sub.add_parser("distill-reward", help="one discriminator that scores like the whole snapshot history")
    p.add_argument("--bundle", required=True, help="bundle with ensemble.pt and dynamics_reward.pt (the teacher)")
    p.add_argument("--data", required=True, help=f"the training data of the bundle: {DATA_HELP}")
    p.add_argument("--env-id", help=ENV_ID_HELP)
    p.add_argument("--out", required=True, help="new bundle directory (ensemble copied, distilled reward)")
    p.add_argument("--snapshots", type=int, help="distil this many of the teacher's snapshots, evenly spaced "
                                                 "(as `morec export --snapshots`)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--set", nargs="*", help="DistillConfig overrides key=value")
    p.set_defaults(func=cmd_distill_reward)

    p = sub.add_parser("export", help="export a bundle's models to ONNX")
    p.add_argument("--bundle", required=True)
    p.add_argument("--all-members", action="store_true",
                   help="keep every ensemble member in the graph (default: the elites only, all the filter uses)")
    p.add_argument("--snapshots", type=int, help="export only this many reward snapshots, evenly spaced "
                                                 "(cheaper scoring; `morec diagnose --snapshot-sweep` shows the cost)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("export-policy", help="export a SAC behaviour policy's deterministic actor to ONNX")
    p.add_argument("--policy", required=True, help="stable-baselines3 SAC checkpoint .zip")
    p.add_argument("--task", required=True, help="the task it was trained on (checked against its spaces)")
    p.add_argument("--out", required=True, help="output .onnx")
    p.set_defaults(func=cmd_export_policy)

    p = sub.add_parser("train-policy", help="offline SAC on filtered model rollouts (OfflineRLConfig overrides with --set)")
    p.add_argument("--bundle", required=True, help="bundle with ensemble.onnx (and dynamics_reward.onnx for MOREC)")
    p.add_argument("--data", required=True, help=f"the offline dataset, start states and the real share of batches: "
                                                 f"{DATA_HELP}")
    p.add_argument("--env-id", help=ENV_ID_HELP)
    p.add_argument("--level", required=True, help="dataset level (medium, medium-replay, ...): picks the penalty "
                                                  "coefficient in sim/offline_rl/<task>.yaml")
    p.add_argument("--backbone", default="mopo", choices=("mopo", "mobile"))
    p.add_argument("--no-morec", action="store_true", help="the backbone alone: random-elite samples, short rollouts")
    p.add_argument("--out", required=True, help="run directory: log.csv, checkpoint.pt, policy.onnx, critic.onnx")
    p.add_argument("--result", help="result JSON (default OUT/result.json)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime CPU threads")
    p.add_argument("--set", nargs="*", help="OfflineRLConfig overrides key=value")
    p.set_defaults(func=cmd_train_policy)

    p = sub.add_parser("diagnose", help="measure the filter on held-out data (torch checkpoints of the bundle, "
                                        "else its ONNX graphs)")
    p.add_argument("--bundle", required=True)
    p.add_argument("--train-data", required=True, help=DATA_HELP)
    p.add_argument("--eval-data", nargs="+", required=True, metavar="NAME=PATH", help="datasets as --train-data")
    p.add_argument("--env-id", help=ENV_ID_HELP)
    p.add_argument("--horizon", type=int, default=50)
    p.add_argument("--starts", type=int, default=200)
    p.add_argument("--transitions", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="report JSON")
    p.add_argument("--plot", help="report PNG")
    p.add_argument("--snapshot-sweep", nargs="*", type=int, metavar="K",
                   help="also measure rewards averaging only K of the snapshots (e.g. 1 5 10 40; torch bundles)")
    p.add_argument("--threads", type=int, default=1, help="torch / ONNX Runtime CPU threads")
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser("monitor", help="calibrate the gap monitor on the nominal robot, measure it on a perturbed one")
    p.add_argument("--bundle", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--policies", nargs="+", default=["random"], metavar="POLICY",
                   help=f"who drives the nominal robot for calibration (the first also drives the perturbed one): "
                        f"{POLICY_FORMS}")
    p.add_argument("--unseen-policies", nargs="*", default=[], metavar="POLICY",
                   help="policies the calibration does not see: false alarms on the nominal robot under each")
    p.add_argument("--variants", nargs="+", default=["real"], help="perturbed robot variants of the task spec")
    p.add_argument("--episodes", type=int, default=10, help="episodes per set (calibration, nominal, perturbed)")
    p.add_argument("--steps", type=int, default=1000, help="steps per episode")
    p.add_argument("--window", type=int, default=50, help="transitions the monitor averages")
    p.add_argument("--margin", type=float, default=0.25, help="threshold margin beyond the calibration extreme")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="report JSON")
    p.add_argument("--write-card", action="store_true",
                   help="store the thresholds in the bundle's card.json, where the filter node reads them")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("report", help="PNGs and one self-contained HTML page: a dataset's coverage, a bundle's "
                                      "training and rollout error, a recording's predictions and monitor signals")
    p.add_argument("input", help=f"a recording (.mcap file or rosbag2 folder), a model bundle directory, or a "
                                 f"dataset ({DATA_HELP})")
    p.add_argument("--out", help="output directory (default: <input name>_report)")
    p.add_argument("--bundle", help="the bundle a dataset is judged against (its normaliser, rollout error), or "
                                    "whose thresholds a recording's monitor is drawn with (default models/<task>)")
    p.add_argument("--reference", help="the bundle's training data, to compare a dataset's coverage with")
    p.add_argument("--data", help="a dataset for a bundle's rollout error against horizon")
    p.add_argument("--env-id", help=ENV_ID_HELP)
    p.add_argument("--task", help="a recording's task (default: the one morec_record stored)")
    p.add_argument("--start", type=float, help="recording: start of the predicted-vs-actual window, s into it "
                                               "(default: the first prediction)")
    p.add_argument("--window", type=float, default=5.0, help="recording: length of that window in s")
    p.add_argument("--dims", type=int, nargs="+", help="recording: state dimensions drawn (default: the first 4)")
    p.add_argument("--horizon", type=positive_int, default=50, help="rollout error: model steps")
    p.add_argument("--starts", type=positive_int, default=100, help="rollout error: start states")
    p.add_argument("--recover", action="store_true", help="read a killed recorder's truncated files")
    p.add_argument("--threads", type=int, default=1, help="torch / ONNX Runtime CPU threads")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("up", help="start the ROS 2 nodes of a launch config as processes (Ctrl-C stops them)")
    p.add_argument("config", help="config name in launch/configs (full, sim_only, robot_only) or a YAML path")
    p.add_argument("--domain-id", type=int, help="ROS_DOMAIN_ID for all nodes")
    p.set_defaults(func=cmd_up)

    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.command_line = "morec " + shlex.join(argv)  # recorded in data and model cards
    start = time.time()
    from .dataset import DatasetError
    from .runtime import ModelFileError
    from .task_spec import TaskSpecError

    try:
        code = args.func(args)
    except (DatasetError, TaskSpecError, ModelFileError, FileNotFoundError) as err:
        # Bad input, not a bug: one line that names the problem, no traceback.
        raise SystemExit(f"morec {args.command}: error: {err}") from None
    print(f"[morec {args.command}] done in {time.time() - start:.1f}s")
    return code


if __name__ == "__main__":
    sys.exit(main())
