"""Filter node: MOREC's selected prediction, and the sim-to-real gap monitor.

For every command sent in a state it runs one FilteredDynamics step (the same candidate draw,
r_D scoring and selection the planner uses) and publishes the selected next observation on
/morec/prediction and [r_D of the selected candidate, r_D of the last real transition, the command's
send time in s] on /morec/dynamics_reward (the time names the command both answer, however late).
Every real transition (s, a, s') the robot makes feeds the gap monitor
(morec.monitor): its r_D, the elite-mean prediction's one-step error and the ensemble's
disagreement, each averaged over the last `monitor_window` transitions. While a monitored signal is
beyond its threshold the node reports WARN in /diagnostics: the model no longer describes this robot.
Thresholds default to those `morec monitor --write-card` calibrated into the bundle's card.json.
"""

import sys
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray

from morec.bundle import read_card
from morec.monitor import DEFAULT_ALARM_ON, GapMonitor, transition_signals
from morec.rollout import FilterConfig, FilteredDynamics
from morec.task_spec import load_task_spec
from morec_ros.common import Transitions, bundle_dir, load_dynamics, load_reward, watch_robot
from morec_ros.diagnostics import publish_diagnostics
from morec_ros.input_check import InputCheck
from morec_ros.node_main import main_for
from morec_ros.node_params import FilterParams, MonitorParams
from morec_ros.parameters import declare_params


class FilterNode(Node):

    def __init__(self, **kwargs):
        super().__init__('morec_filter', **kwargs)
        p = declare_params(self, FilterParams)
        spec = load_task_spec(p.task)
        path = bundle_dir(p.bundle, spec)
        # The monitor's defaults: the bundle's calibration when it has one.
        calibrated = read_card(path).get('monitor', {}).get('calibration', {})
        limits = calibrated.get('thresholds', {})
        m = declare_params(self, MonitorParams, {
            # Uncalibrated, only r_D has a meaningful limit: MOREC's own trust threshold.
            'monitor_signals': list(DEFAULT_ALARM_ON) if calibrated else ['dynamics_reward'],
            'monitor_window': calibrated.get('window', MonitorParams.monitor_window),
            'monitor_threshold': limits.get('dynamics_reward', MonitorParams.monitor_threshold),
            'error_threshold': limits.get('one_step_error', MonitorParams.error_threshold),
            'disagreement_threshold': limits.get('disagreement', MonitorParams.disagreement_threshold)})
        thresholds = {'dynamics_reward': m.monitor_threshold, 'one_step_error': m.error_threshold,
                      'disagreement': m.disagreement_threshold}
        window = m.monitor_window
        self._reward = load_reward(path, spec, p.device, p.threads)
        self._dynamics = load_dynamics(path, spec, p.device, p.threads)
        self._obs_scale = np.asarray(self._dynamics.meta['input_std'][: spec.obs_dim], np.float32)
        cfg = FilterConfig(mode='filter', samples_per_elite=p.samples_per_elite, threshold=p.filter_threshold)
        self._model = FilteredDynamics(self._dynamics, self._reward, cfg)
        self._monitor = GapMonitor({k: thresholds[k] for k in m.monitor_signals if thresholds[k] > 0}, window)
        self._hardware_id = f'{spec.env_id}: {path}'
        self._rng = np.random.default_rng(p.seed)
        self._check = InputCheck(self.get_logger(), spec)
        self._transitions = Transitions(spec.control_period)
        self._selected = deque(maxlen=window)  # r_D of recent selected predictions
        self._last_real = float('nan')
        self._alarms = []  # signals beyond their thresholds after the latest real transition
        self._warn_since = None  # the real-transition count when the monitor started warning

        self._pred_pub = self.create_publisher(Float64MultiArray, 'morec/prediction', 10)
        self._score_pub = self.create_publisher(Float64MultiArray, 'morec/dynamics_reward', 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        watch_robot(self, self._check, self._on_state, p.command_topic, self._on_command, p.diagnostics_period,
                    self._publish_diagnostics)
        rules = ', '.join(f'{k} {"<" if k == "dynamics_reward" else ">"} {v:.4g}'
                          for k, v in self._monitor.thresholds.items()) or 'no signal'
        source = 'calibrated in card.json' if limits else 'not calibrated: run `morec monitor --write-card`'
        self.get_logger().info(f'{self._hardware_id}: {self._reward.meta["snapshots"]} r_D snapshots; monitor WARN '
                               f'while {rules} over {window} transitions ({source})')

    def _on_command(self, msg, info):
        command = self._check.command(msg)
        obs = self._transitions.applies_to(info['source_timestamp'])
        if command is None or obs is None:
            return
        step = self._model.step(obs[None], command[None], self._rng)
        self._selected.append(float(step.score[0]))
        self._pred_pub.publish(Float64MultiArray(data=step.next_obs[0].astype(np.float64).tolist()))
        self._score_pub.publish(Float64MultiArray(data=[float(step.score[0]), self._last_real,
                                                        info['source_timestamp'] * 1e-9]))
        # The step's elite-mean prediction comes back with the transition: the monitor needs no second ensemble call.
        self._monitor_real(self._transitions.command(command, info['source_timestamp'], step))

    def _on_state(self, msg, info):
        checked = self._check.state(msg)
        if checked is not None:
            self._monitor_real(self._transitions.state(*checked, info['source_timestamp']))

    def _monitor_real(self, transitions):
        for obs, act, step, next_obs in transitions:
            signals = transition_signals(self._dynamics, self._reward, self._obs_scale, obs[None], act[None],
                                         next_obs[None], step)
            self._last_real = float(signals['dynamics_reward'][0])
            self._alarms = self._monitor.update({k: v[0] for k, v in signals.items()})

    def _publish_diagnostics(self):
        fresh_drops, dropped = self._check.drops_since_report()
        means, seen, window = self._monitor.means(), self._transitions.completed, self._monitor.window
        gap = bool(self._alarms)
        described = ', '.join(f'{k} {means[k]:.4g}' for k in self._alarms)
        if gap and self._warn_since is None:
            self._warn_since = seen
            self.get_logger().warning(f'real transitions over the last {window}: {described} beyond the '
                                      f'calibrated thresholds: the model does not describe this robot')
        elif not gap and self._warn_since is not None:
            self._warn_since = None
            self.get_logger().info('real transitions are consistent with the model again')
        level, message = DiagnosticStatus.OK, 'ok'
        if gap:
            level, message = DiagnosticStatus.WARN, f'sim-to-real gap: {described} (mean of real transitions)'
        elif fresh_drops:
            level, message = DiagnosticStatus.WARN, f'dropped {fresh_drops} invalid messages'
        elif seen < window:
            message = f'monitor warming up ({seen}/{window} transitions)'
        values = {'transitions': seen, 'transition_gaps': self._transitions.gaps,
                  'real_score_mean': f"{means['dynamics_reward']:.4f}",
                  'one_step_error_mean': f"{means['one_step_error']:.4f}",
                  'disagreement_mean': f"{means['disagreement']:.4f}",
                  'selected_score_mean': f'{_mean(self._selected):.4f}',
                  'gap_warning': gap, 'gap_signals': ' '.join(self._alarms),
                  'transitions_in_warning': seen - self._warn_since if gap else 0,
                  'messages_dropped': dropped, **self._check.dropped}
        publish_diagnostics(self, self._diag_pub, 'consistency monitor', level, message, self._hardware_id, values)


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else float('nan')

main = main_for(FilterNode, 'morec_filter')

if __name__ == '__main__':
    sys.exit(main())
