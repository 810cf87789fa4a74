"""The demo's report on one recorded episode, without ROS: the JSON summary, the plot and the printed lines.

The return and D4RL-normalised score, the achieved control rate against the nominal one, the controller's
latency and deadline misses, how consistent the robot's real transitions were with the model (their
dynamics reward r_D), the gap monitor's readings and the filter's one-step prediction error.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from morec.fileio import atomic_path
from morec.rollout import FilterConfig
from morec.task_spec import TaskSpec

MODE_NOTES = {
    'lockstep': 'lockstep (the default: a planner that misses the period on a busy machine costs no return): '
                'the sim waits for every command, so the episode is the one the planner earns at its '
                'settings on any machine; rate and latency say how far from real time that is',
    'realtime': 'realtime: the sim runs on the wall clock and holds the latest command; the rate is the true '
                'control rate, and a planner that falls behind acts on old states',
}
# What the filter treats as trustworthy: the share of real transitions below it is the gap monitor's reading.
THRESHOLD = FilterConfig.threshold


@dataclass
class Episode:
    """One episode's states 0..steps, and what the sim, controller and filter said about them."""
    time: np.ndarray  # sim time of each state [s]
    obs: np.ndarray  # [steps + 1, S]
    predicted: dict  # state index -> the filter's one-step prediction of that state
    selected: dict  # state index -> r_D of the candidate the filter selected for the transition into it
    real: dict  # state index -> r_D of the real transition into it
    commands: int  # commands sent while the episode ran
    plans: int  # plans published while the episode ran
    wall: float  # seconds between the first and the last state
    episode_return: float  # as the sim reported it
    controller: dict  # the controller's metrics (ControlLoop.status) from its first report after the episode
    planner: str  # what the controller runs, as its diagnostics name it
    monitor: list  # the gap monitor's diagnostics (key -> value strings), in order

    @property
    def steps(self) -> int:
        return len(self.obs) - 1


def summarize(spec: TaskSpec, ep: Episode, settings: dict, *, variant: str, mode: str, one_process: bool,
              max_steps: int) -> dict:
    """The JSON summary of an episode run with these demo options and controller settings."""
    c = ep.controller
    real = np.array(list(ep.real.values()))
    errors = [np.linalg.norm(p - ep.obs[k]) for k, p in ep.predicted.items()]
    return {
        'task': spec.name, 'env_id': spec.env_id, 'variant': variant, 'mode': mode, 'one_process': one_process,
        'steps': ep.steps, 'max_steps': max_steps, 'episode_return': ep.episode_return,
        'normalized_score': spec.normalized_score(ep.episode_return),
        'control': {
            'nominal_rate_hz': 1.0 / spec.control_period,
            'achieved_rate_hz': ep.commands / ep.wall,
            'plan_rate_hz': ep.plans / ep.wall,  # below the command rate when the planner lags
            'real_time_factor': ep.steps * spec.control_period / ep.wall,
            'commands': ep.commands, 'wall_s': ep.wall,
            'deadline_ms': spec.control_period * 1e3,
            'latency_p50_ms': c['latency_p50_ms'], 'latency_p99_ms': c['latency_p99_ms'],
            'deadline_misses': int(c['deadline_misses']), 'plans': int(c['plans']),
            'stale_events': int(c['stale_events']), 'planner': ep.planner, 'settings': settings,
            'lead_periods': int(c['lead_periods']),  # real time: planning latency compensated
        },
        'consistency': {
            'transitions': len(real), 'threshold': THRESHOLD,
            'mean': float(real.mean()) if len(real) else None, 'min': float(real.min()) if len(real) else None,
            'share_below_threshold': float(np.mean(real < THRESHOLD)) if len(real) else None,
        },
        'prediction': {'pairs': len(errors), 'one_step_error_mean': float(np.mean(errors)) if errors else None},
        'monitor': monitor_readings(ep.monitor),
    }


def monitor_readings(reports: list[dict]) -> dict:
    """The gap monitor's view of the episode: did it warn, from which real transition on, and its last means."""
    warned = [r for r in reports if r.get('gap_warning') == 'True']
    last = reports[-1] if reports else {}
    return {'warned': bool(warned),
            'first_warning_at_transition': int(warned[0]['transitions']) if warned else None,
            'signals': sorted({name for r in warned for name in r['gap_signals'].split()}),
            'final_means': {k: float(last[k]) for k in ('real_score_mean', 'one_step_error_mean', 'disagreement_mean')
                            if k in last}}


def plot(path: Path, spec: TaskSpec, ep: Episode, title: str) -> None:
    """Predicted against actual states, and r_D of the selected predictions and the real transitions, over time."""
    import matplotlib

    matplotlib.use('Agg')  # headless
    import matplotlib.pyplot as plt

    # Two positions and two velocities: for HalfCheetah the body's height, pitch and forward speed.
    names = [f'{j} position' for j in spec.obs_positions] + [f'{j} velocity' for j in spec.obs_velocities]
    n_pos = len(spec.obs_positions)
    dims = list(range(min(2, n_pos))) + list(range(n_pos, min(n_pos + 2, len(names))))
    fig, axes = plt.subplots(len(dims) + 1, 1, sharex=True, figsize=(9, 1.9 * (len(dims) + 1)))
    t = ep.time
    pk = sorted(ep.predicted)
    for ax, d in zip(axes, dims):
        ax.plot(t, ep.obs[:, d], color='k', lw=1.2, label='actual')
        ax.plot(t[pk], [ep.predicted[k][d] for k in pk], '.', color='tab:orange', ms=3,
                label="filter's one-step prediction")
        ax.set_ylabel(names[d], fontsize=8)
    axes[0].legend(fontsize=8, loc='upper right')
    ax = axes[-1]
    sk, rk = sorted(ep.selected), sorted(ep.real)
    ax.plot(t[sk], [ep.selected[k] for k in sk], '.', color='tab:orange', ms=3, label='selected prediction')
    ax.plot(t[rk], [ep.real[k] for k in rk], color='tab:blue', lw=1.2, label='real transition')
    ax.axhline(THRESHOLD, color='tab:red', ls='--', lw=1, label=f'threshold {THRESHOLD}')
    ax.set(xlabel='sim time [s]', ylabel='dynamics reward r_D', ylim=(0.25, 1.4))  # r_D lies in [0.31, 1.31]
    ax.legend(fontsize=8, loc='best')
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path, suffix='.png') as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def print_summary(s: dict, params: Path, png: Path, summary: Path) -> None:
    """The summary as the demo prints it, naming the controller's parameter file and where the files went."""
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
    print("  gap monitor      " + (f"WARNED from real transition {m['first_warning_at_transition']} on "
                                    f"({', '.join(m['signals'])})" if m['warned'] else 'no warning')
          + (f'; window means at the end: {means}' if means else ''))
    if s['prediction']['pairs']:
        print(f"  one-step error   {s['prediction']['one_step_error_mean']:.4f} (filter's prediction vs the next "
              f"state, Euclidean, over {s['prediction']['pairs']} steps)")
    print(f'  plot             {png}')
    print(f'  summary          {summary}')
