"""`morec_demo` (make demo): the whole stack on one headless episode, then a report.

Brings up sim, dynamics, filter, command guard and controller as separate processes (or, with --one-process,
together in one) with the runner behind `morec up` (launch/configs/full.yaml, plus
launch/params/tasks/<task>.yaml and the options below as parameter overrides), records the episode in-process
with a small rclpy node, stops everything and prints the return and D4RL-normalised score, the achieved
control rate against the nominal one, the controller's latency and deadline misses, and how consistent the
robot's real transitions were with the model (their dynamics reward r_D). A plot (predicted vs actual state,
r_D over time) and a JSON summary go to artifacts/demo/. Exit code 1 when the episode did not complete or a
node failed.

Every message is kept with its source timestamp (the publisher's wall clock, which all processes on
this machine share). That orders them across topics: a command answers the latest state published
before it, and the filter's prediction and scores belong to the command that triggered them.
"""

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray
from std_srvs.srv import SetBool

from morec import runner
from morec.bundle import ENSEMBLE_ONNX, REWARD_ONNX
from morec.fileio import atomic_path, write_json
from morec.rollout import FilterConfig
from morec.task_spec import TaskSpec, load_task_spec
from morec_ros.common import bundle_dir

CONFIG = 'full'
PARAMS_DIR = runner.config_dir().parent / 'params'
SIM, CONTROLLER, FILTER, GUARD = 'morec_sim', 'morec_controller', 'morec_filter', 'morec_guard'
MODES = ('lockstep', 'realtime')
MODE_NOTES = {
    'lockstep': 'lockstep (the default: a planner that misses the period on a busy machine costs no return): '
                'the sim waits for every command, so the episode is the one the planner earns at its '
                'settings on any machine; rate and latency say how far from real time that is',
    'realtime': 'realtime: the sim runs on the wall clock and holds the latest command; the rate is the true '
                'control rate, and a planner that falls behind acts on old states',
}
# What the filter treats as trustworthy: the share of real transitions below it is the gap monitor's reading.
THRESHOLD = FilterConfig.threshold


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
                        help='controller parameter overrides (YAML values), e.g. filtered=false, model=mujoco, '
                             'mode=policy policy=models/behavior/halfcheetah/sac_50000.onnx')
    parser.add_argument('--one-process', action='store_true',
                        help='run the nodes in one process on one executor (morec_stack) instead of one each')
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


class Recorder(Node):
    """Starts the sim's first episode once every node is up, and keeps every message the report needs
    as (source timestamp ns, message)."""

    def __init__(self, context, command_topic: str, nodes: list[str]):
        super().__init__('morec_demo', context=context)
        self.states, self.commands, self.plans, self.predictions, self.scores, self.returns = ([] for _ in range(6))
        self.controller, self.monitor = [], []  # (source timestamp, DiagnosticStatus) of each node's reports
        self.end = None  # index of the first state after the episode
        self._waiting_for = set(nodes)  # nodes not heard from yet
        self._resume = self.create_client(SetBool, f'/{SIM}/pause')
        self._resumed_at = None
        # Transient-local: the sim's first state may have been published before this node matched it.
        latched = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(JointState, 'joint_states', self._on_state, latched)
        self._keep(Float64MultiArray, command_topic, self.commands)
        self._keep(Float64MultiArray, 'morec/plan', self.plans)
        self._keep(Float64MultiArray, 'morec/prediction', self.predictions)
        self._keep(Float64MultiArray, 'morec/dynamics_reward', self.scores)
        self._keep(Float64, 'morec/episode_return', self.returns)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, QoSProfile(depth=100))

    def _keep(self, msg_type, topic, into):
        self.create_subscription(msg_type, topic, lambda msg, info: into.append((info['source_timestamp'], msg)),
                                 QoSProfile(depth=100))

    def _on_state(self, msg, info):
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if self.end is None and self.states and stamp == self.states[-1][1]:
            self.end = len(self.states)  # the sim's reset after an episode repeats the last stamp
        self.states.append((info['source_timestamp'], stamp, msg))

    def _on_diagnostics(self, msg, info):
        self._waiting_for -= {s.name.split(':')[0] for s in msg.status}
        self.controller += [(info['source_timestamp'], s) for s in msg.status if s.name.startswith(f'{CONTROLLER}:')]
        self.monitor += [(info['source_timestamp'], s) for s in msg.status if s.name.startswith(f'{FILTER}:')]

    def start_when_ready(self):
        """Unpause the sim once every node has been heard from, repeating until its first state arrives.

        Hearing from a node means it is fully up and it has discovered this one; a node that joins
        the DDS graph later than another may not hear of it for a few seconds.
        """
        if self._waiting_for or self.states or not self._resume.service_is_ready():
            return
        if self._resumed_at is None or time.monotonic() - self._resumed_at > 1.0:
            self._resume.call_async(SetBool.Request(data=False))
            self._resumed_at = time.monotonic()

    def done(self) -> bool:
        """The episode is over and the controller has reported on it since."""
        return (self.end is not None and bool(self.returns) and bool(self.controller)
                and self.controller[-1][0] > self.states[self.end][0])


def record(executor, recorder: Recorder, stop: threading.Event, timeout: float) -> None:
    """Spin until the episode is reported on, the runner stops, or time is up; then stop the runner."""
    deadline = time.monotonic() + timeout
    while not (stop.is_set() or recorder.done()) and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
        recorder.start_when_ready()
    stop.set()


def episode(rec: Recorder, spec: TaskSpec) -> dict:
    """The first episode's states, and what the controller and filter said about each of them."""
    states = rec.states[:rec.end]
    sent = np.array([s[0] for s in states])
    time_s = np.array([s[1] for s in states]) / 1e9
    obs = np.array([spec.observation_from_joint_state(m.name, m.position, m.velocity) for _, _, m in states])
    after = rec.states[rec.end][0]  # the next episode's first state
    cmd_t = np.array([t for t, _ in rec.commands], dtype=np.int64)
    # The state each command answers; -1 for commands of the next episode.
    cmd_k = np.where(cmd_t < after, np.searchsorted(sent, cmd_t, side='right') - 1, -1)

    def state_of(messages):
        j = np.searchsorted(cmd_t, [t for t, _ in messages], side='right') - 1
        return [int(cmd_k[i]) if i >= 0 else -1 for i in j]

    last = len(states) - 1
    # Later messages for the same state replace earlier ones: the robot acts on the latest command.
    predicted = {k + 1: np.array(m.data) for k, (_, m) in zip(state_of(rec.predictions), rec.predictions)
                 if 0 <= k < last}
    selected = {k + 1: m.data[0] for k, (_, m) in zip(state_of(rec.scores), rec.scores) if 0 <= k < last}
    real = {k: m.data[1] for k, (_, m) in zip(state_of(rec.scores), rec.scores)
            if 1 <= k <= last and np.isfinite(m.data[1])}  # the transition into state k
    def during(messages):  # how many were sent while the episode ran
        return int(sum(sent[0] <= t < sent[-1] for t, _ in messages))

    return dict(time=time_s, obs=obs, steps=last, predicted=predicted, selected=selected, real=real,
                commands=during(rec.commands), plans=during(rec.plans), wall=(sent[-1] - sent[0]) / 1e9)


def summarize(args, spec: TaskSpec, rec: Recorder, ep: dict, settings: dict) -> dict:
    ret = float(rec.returns[0][1].data)
    status = rec.controller[-1][1]
    values = {kv.key: kv.value for kv in status.values}
    real = np.array(list(ep['real'].values()))
    errors = [np.linalg.norm(p - ep['obs'][k]) for k, p in ep['predicted'].items()]
    return {
        'task': spec.name, 'env_id': spec.env_id, 'variant': args.variant, 'mode': args.mode,
        'one_process': args.one_process,
        'steps': ep['steps'], 'max_steps': args.steps, 'episode_return': ret,
        'normalized_score': spec.normalized_score(ret),
        'control': {
            'nominal_rate_hz': 1.0 / spec.control_period,
            'achieved_rate_hz': ep['commands'] / ep['wall'],
            'plan_rate_hz': ep['plans'] / ep['wall'],  # below the command rate when the planner lags
            'real_time_factor': ep['steps'] * spec.control_period / ep['wall'],
            'commands': ep['commands'], 'wall_s': ep['wall'],
            'deadline_ms': spec.control_period * 1e3,
            'latency_p50_ms': float(values['latency_p50_ms']), 'latency_p99_ms': float(values['latency_p99_ms']),
            'deadline_misses': int(values['deadline_misses']), 'plans': int(values['plans']),
            'stale_events': int(values['stale_events']), 'planner': status.hardware_id, 'settings': settings,
            'lead_periods': int(values.get('lead_periods', 0)),  # real time: planning latency compensated
        },
        'consistency': {
            'transitions': len(real), 'threshold': THRESHOLD,
            'mean': float(real.mean()) if len(real) else None, 'min': float(real.min()) if len(real) else None,
            'share_below_threshold': float(np.mean(real < THRESHOLD)) if len(real) else None,
        },
        'prediction': {'pairs': len(errors), 'one_step_error_mean': float(np.mean(errors)) if errors else None},
        'monitor': monitor_readings(rec),
    }


def monitor_readings(rec: Recorder) -> dict:
    """The gap monitor's view of the episode: did it warn, from which real transition on, and its last means."""
    reports = [{kv.key: kv.value for kv in status.values} for _, status in rec.monitor]
    warned = [r for r in reports if r.get('gap_warning') == 'True']
    last = reports[-1] if reports else {}
    return {'warned': bool(warned),
            'first_warning_at_transition': int(warned[0]['transitions']) if warned else None,
            'signals': sorted({name for r in warned for name in r['gap_signals'].split()}),
            'final_means': {k: float(last[k]) for k in ('real_score_mean', 'one_step_error_mean', 'disagreement_mean')
                            if k in last}}


def plot(path: Path, spec: TaskSpec, ep: dict, title: str) -> None:
    import matplotlib

    matplotlib.use('Agg')  # headless
    import matplotlib.pyplot as plt

    # Two positions and two velocities: for HalfCheetah the body's height, pitch and forward speed.
    names = [f'{j} position' for j in spec.obs_positions] + [f'{j} velocity' for j in spec.obs_velocities]
    n_pos = len(spec.obs_positions)
    dims = list(range(min(2, n_pos))) + list(range(n_pos, min(n_pos + 2, len(names))))
    fig, axes = plt.subplots(len(dims) + 1, 1, sharex=True, figsize=(9, 1.9 * (len(dims) + 1)))
    t = ep['time']
    pk = sorted(ep['predicted'])
    for ax, d in zip(axes, dims):
        ax.plot(t, ep['obs'][:, d], color='k', lw=1.2, label='actual')
        ax.plot(t[pk], [ep['predicted'][k][d] for k in pk], '.', color='tab:orange', ms=3,
                label="filter's one-step prediction")
        ax.set_ylabel(names[d], fontsize=8)
    axes[0].legend(fontsize=8, loc='upper right')
    ax = axes[-1]
    sk, rk = sorted(ep['selected']), sorted(ep['real'])
    ax.plot(t[sk], [ep['selected'][k] for k in sk], '.', color='tab:orange', ms=3, label='selected prediction')
    ax.plot(t[rk], [ep['real'][k] for k in rk], color='tab:blue', lw=1.2, label='real transition')
    ax.axhline(THRESHOLD, color='tab:red', ls='--', lw=1, label=f'threshold {THRESHOLD}')
    ax.set(xlabel='sim time [s]', ylabel='dynamics reward r_D', ylim=(0.25, 1.4))  # r_D lies in [0.31, 1.31]
    ax.legend(fontsize=8, loc='best')
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path, suffix='.png') as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def report(s: dict, params: Path, png: Path, summary: Path) -> None:
    c, r = s['control'], s['consistency']
    score = 'n/a (D4RL has no reference for this task)' if s['normalized_score'] is None \
        else f"{s['normalized_score']:.1f}" + (' (D4RL scores 1000-step episodes)' if s['steps'] < 1000 else '')
    ended = 'truncated at --steps' if s['steps'] >= s['max_steps'] else 'terminated'
    print(f"\nmorec demo: {s['env_id']}, {s['variant']} robot, {s['mode']}"
          + (', all nodes in one process' if s['one_process'] else ''))
    print(f"  {MODE_NOTES[s['mode']]}")
    # A policy ignores the planner's settings that the params file also holds: show only what it runs.
    shown = {k: v for k, v in c['settings'].items() if c['settings'].get('mode') != 'policy' or k in ('mode', 'policy')}
    settings = ', '.join(f'{k} {v}' for k, v in shown.items())
    print(f"  controller       {c['planner']}: {settings} ({params.name})")
    print(f"  episode return   {s['episode_return']:.2f} over {s['steps']} steps ({ended}); "
          f'D4RL-normalised score {score}')
    print(f"  control rate     {c['achieved_rate_hz']:.1f} Hz achieved vs {c['nominal_rate_hz']:.1f} Hz nominal "
          f"({c['real_time_factor']:.2f} x real time), {c['plan_rate_hz']:.1f} new plans/s")
    print(f"  planner latency  p50 {c['latency_p50_ms']:.1f} ms, p99 {c['latency_p99_ms']:.1f} ms; "
          f"{c['deadline_misses']} of {c['plans']} plans missed the {c['deadline_ms']:.0f} ms deadline")
    if c['stale_events']:
        print(f"  watchdog         fired {c['stale_events']} times: the controller commanded without fresh state")
    if r['transitions']:
        print(f"  consistency r_D  mean {r['mean']:.3f}, min {r['min']:.3f}, {100 * r['share_below_threshold']:.1f}% "
              f"below {r['threshold']} over {r['transitions']} real transitions")
    else:
        print('  consistency r_D  no real transition was scored')
    m = s['monitor']
    means = ', '.join(f'{k.removesuffix("_mean")} {v:.3f}' for k, v in m['final_means'].items())
    print(f"  gap monitor      " + (f"WARNED from real transition {m['first_warning_at_transition']} on "
                                    f"({', '.join(m['signals'])})" if m['warned'] else 'no warning')
          + (f'; window means at the end: {means}' if means else ''))
    if s['prediction']['pairs']:
        print(f"  one-step error   {s['prediction']['one_step_error_mean']:.4f} (filter's prediction vs the next "
              f"state, Euclidean, over {s['prediction']['pairs']} steps)")
    print(f'  plot             {png}')
    print(f'  summary          {summary}')


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
        # The report takes the controller's figures from its first diagnostics after the episode:
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
    recorder = Recorder(context, command_topic, [node.name for node in runner.load_config(CONFIG)])
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

    if not recorder.done():
        why = 'a node failed (see its log above)' if code else f'not within --timeout {args.timeout:g} s or interrupted'
        print(f'\nmorec demo: the episode did not complete: {why}', file=sys.stderr)
        return 1
    name = f'{args.task}_{args.variant}_{args.mode}' + ('_one_process' if args.one_process else '')
    png, summary_path = args.out / f'{name}.png', args.out / f'{name}.json'
    ep = episode(recorder, spec)
    summary = summarize(args, spec, recorder, ep, settings)
    plot(png, spec, ep, f"{spec.env_id} ({args.variant}, {args.mode}): return {summary['episode_return']:.1f} "
                        f"over {ep['steps']} steps")
    write_json(summary_path, summary)
    report(summary, params, png, summary_path)
    if code:
        print(f'\nmorec demo: a node did not stop cleanly (runner exit code {code})', file=sys.stderr)
    return 1 if code else 0


if __name__ == '__main__':
    sys.exit(main())
