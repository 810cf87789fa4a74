"""`morec_demo` (make demo): the whole stack on one headless episode, then a report.

Brings up sim, dynamics, filter, command guard and controller as separate processes (or, with --one-process,
together in one) with the runner behind `morec up` (launch/configs/full.yaml, plus
launch/params/tasks/<task>.yaml and the options below as parameter overrides), records the episode in-process
with a small rclpy node, stops everything and prints the return and D4RL-normalised score, the achieved
control rate against the nominal one, the controller's latency and deadline misses, and how consistent the
robot's real transitions were with the model (their dynamics reward r_D). A plot (predicted vs actual state,
r_D over time) and a JSON summary go to artifacts/demo/. Exit code 1 when the episode did not complete or a
node failed.

This module is the command line and the bring-up; episode_recorder.py records the episode and lines its
messages up, episode_report.py summarises, plots and prints it.
"""

import argparse
import os
import sys
import threading
from pathlib import Path

import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from morec import runner
from morec.bundle import ENSEMBLE_ONNX, REWARD_ONNX
from morec.fileio import write_json
from morec.task_spec import load_task_spec
from morec_ros.common import bundle_dir
from morec_ros.episode_recorder import CONTROLLER, SIM, Recorder, episode, record
from morec_ros.episode_report import MODE_NOTES, plot, print_summary, summarize

CONFIG = 'full'
PARAMS_DIR = runner.config_dir().parent / 'params'
GUARD = 'morec_guard'
MODES = ('lockstep', 'realtime')


def default_task() -> str:
    """The shipped HalfCheetah bundle once it is there, else the tiny pendulum the tests use."""
    cheetah = bundle_dir('', load_task_spec('halfcheetah'))
    return 'halfcheetah' if all((cheetah / f).is_file() for f in (ENSEMBLE_ONNX, REWARD_ONNX)) else 'inverted_pendulum'


def parse_args(argv):
    tasks = sorted(p.stem for p in (PARAMS_DIR / 'tasks').glob('*.yaml'))
    parser = argparse.ArgumentParser(prog='morec_demo', description=__doc__.split('\n\n')[0])
    parser.add_argument('--task', choices=tasks, default=default_task(),
                        help='default: halfcheetah when models/halfcheetah holds its bundle, else inverted_pendulum')
    parser.add_argument('--mode', choices=MODES, default='lockstep', help='; '.join(MODE_NOTES.values()))
    parser.add_argument('--steps', type=int, default=1000,
                        help='episode length cap (default 1000, the episode D4RL scores are defined on)')
    parser.add_argument('--variant', choices=('nominal', 'real'), default='nominal',
                        help="robot the sim plays: 'nominal' (the training data's) or the perturbed 'real' one")
    parser.add_argument('--bundle', type=Path, help='model bundle directory (default: models/<task>)')
    parser.add_argument('--domain-id', type=int, help='ROS_DOMAIN_ID of the whole run (default: the environment\'s)')
    parser.add_argument('--seed', type=int, default=0, help="the sim's seed: initial state and sensor noise")
    parser.add_argument('--controller', nargs='*', default=[], metavar='KEY=VALUE',
                        help='controller parameter overrides (YAML values), e.g. rollout=filter, model=mujoco, '
                             'mode=policy policy=models/behavior/halfcheetah/sac_50000.onnx')
    parser.add_argument('--one-process', action='store_true',
                        help='run the nodes in one process (morec_stack, an executor thread per node) '
                             'instead of one process each')
    parser.add_argument('--out', type=Path, default=Path('artifacts/demo'), help='directory for the plot and summary')
    parser.add_argument('--timeout', type=float, default=900.0, help='seconds to wait for the episode to end')
    args = parser.parse_args(argv)
    if args.steps < 1 or not args.timeout > 0:
        parser.error('--steps and --timeout must be positive')
    if args.domain_id is not None and not 0 <= args.domain_id <= 232:
        parser.error('--domain-id must be within 0..232')
    overrides = {}
    for item in args.controller:
        key, sep, value = item.partition('=')
        if not key or not sep:
            parser.error(f'--controller takes KEY=VALUE, got {item!r}')
        try:
            overrides[key] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            parser.error(f'--controller {item!r}: {e}')
    args.controller = overrides
    return args


def file_params(path: Path, section: str) -> dict:
    """The parameters a ROS parameter file sets for one node name (or '/**')."""
    return yaml.safe_load(path.read_text()).get(section, {}).get('ros__parameters', {})


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Every process of the demo runs on this machine: keep discovery there, so a demo elsewhere on
    # the network (same domain) cannot drive this robot.
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    spec = load_task_spec(args.task)
    params = runner.task_params(args.task)
    settings = {**file_params(params, CONTROLLER), **args.controller}
    model = {'bundle': str(args.bundle.resolve())} if args.bundle else {}
    overrides = {
        # Paused: the recorder starts the episode once every node is listening.
        # Paced: a controller faster than real time (a policy) must not outrun the dynamics and filter nodes.
        SIM: {'mode': args.mode, 'variant': args.variant, 'episode_length': args.steps, 'start_paused': True,
              'seed': args.seed, 'lockstep_paced': True},
        # The report takes the controller's figures from its first report (metrics) after the episode:
        # frequent ones count few plans of the next, and the latency window spans one episode.
        CONTROLLER: {'lockstep': args.mode == 'lockstep', 'latency_window': args.steps + 1,
                     'diagnostics_period': 0.25, **model, **args.controller},
        'morec_dynamics': model, 'morec_filter': model,
        # The demo runs the stack as a robot does, through the guard; in lockstep it only checks and forwards.
        GUARD: {'lockstep': args.mode == 'lockstep'},
    }
    command_topic = {**file_params(PARAMS_DIR / 'stack.yaml', '/**'), **file_params(params, '/**')}['command_topic']

    context = rclpy.Context()
    # The runner handles Ctrl-C (it stops the nodes in order); rclpy must not take the signal too.
    rclpy.init(context=context, domain_id=args.domain_id, signal_handler_options=SignalHandlerOptions.NO)
    recorder = Recorder(context, spec, command_topic, [node.name for node in runner.load_config(CONFIG)])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(recorder)
    stop = threading.Event()
    watcher = threading.Thread(target=record, args=(executor, recorder, stop, args.timeout), name='recorder')
    watcher.start()
    try:
        code = runner.up(CONFIG, args.domain_id, task=args.task, overrides=overrides, stop=stop,
                         one_process=args.one_process)
    finally:
        stop.set()
        watcher.join()
        executor.shutdown()
        recorder.destroy_node()
        rclpy.try_shutdown(context=context)

    if not recorder.recording.complete:
        why = 'a node failed (see its log above)' if code else f'not within --timeout {args.timeout:g} s or interrupted'
        print(f'\nmorec demo: the episode did not complete: {why}', file=sys.stderr)
        return 1
    name = f'{args.task}_{args.variant}_{args.mode}' + ('_one_process' if args.one_process else '')
    png, summary_path = args.out / f'{name}.png', args.out / f'{name}.json'
    ep = episode(recorder.recording)
    summary = summarize(spec, ep, settings, variant=args.variant, mode=args.mode, one_process=args.one_process,
                        max_steps=args.steps)
    plot(png, spec, ep, f"{spec.env_id} ({args.variant}, {args.mode}): return {ep.episode_return:.1f} "
                        f"over {ep.steps} steps")
    write_json(summary_path, summary)
    print_summary(summary, params, png, summary_path)
    if code:
        print(f'\nmorec demo: a node did not stop cleanly (runner exit code {code})', file=sys.stderr)
    return 1 if code else 0


if __name__ == '__main__':
    sys.exit(main())
