"""Dynamics node: the learned ensemble's one-step view of the robot, and how wrong it is online.

For every command sent in a state it publishes the candidate next observations the filter
chooses from (/morec/candidates, layout [candidates, state]). When the next state arrives one
control period later it publishes the elite-mean prediction's error against what the robot did
(/morec/prediction_error, Euclidean norm in observation units) and summarises recent errors in
/diagnostics.
"""

import sys
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from std_msgs.msg import Float64, Float64MultiArray

from morec.rollout import FilterConfig, FilteredDynamics
from morec.task_spec import load_task_spec
from morec_ros.common import Transitions, bundle_dir, load_dynamics, matrix, watch_robot
from morec_ros.diagnostics import publish_diagnostics
from morec_ros.input_check import InputCheck
from morec_ros.node_main import main_for
from morec_ros.node_params import DynamicsParams
from morec_ros.parameters import declare_params


class DynamicsNode(Node):

    def __init__(self, **kwargs):
        super().__init__('morec_dynamics', **kwargs)
        p = declare_params(self, DynamicsParams)
        spec = load_task_spec(p.task)
        path = bundle_dir(p.bundle, spec)
        # Candidates as the filter draws them; steps give the elite-mean prediction the error is measured on.
        cfg = FilterConfig(mode='elite_mean', samples_per_elite=p.samples_per_elite)
        self._model = FilteredDynamics(load_dynamics(path, spec, p.device, p.threads), None, cfg)
        self._hardware_id = f'{spec.env_id}: {path}'
        self._rng = np.random.default_rng(p.seed)
        self._check = InputCheck(self.get_logger(), spec)
        self._transitions = Transitions(spec.control_period)
        self._errors = deque(maxlen=p.error_window)

        self._cand_pub = self.create_publisher(Float64MultiArray, 'morec/candidates', 10)
        self._error_pub = self.create_publisher(Float64, 'morec/prediction_error', 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        watch_robot(self, self._check, self._on_state, p.command_topic, self._on_command, p.diagnostics_period,
                    self._publish_diagnostics)
        self.get_logger().info(f'{self._hardware_id}: candidates for every command on {p.command_topic}')

    def _on_command(self, msg, info):
        command = self._check.command(msg)
        state = self._transitions.applies_to(info['source_timestamp'])
        if command is None or state is None:
            return
        obs, act = state[None], command[None]
        candidates, expected, _ = self._model.candidates(obs, act, self._rng)
        self._cand_pub.publish(matrix(candidates[0, :, :-1], ('candidates', 'state')))  # drop the reward column
        predicted = expected[0, :-1]  # the elites' mean s'
        self._record_errors(self._transitions.command(command, info['source_timestamp'], predicted))

    def _on_state(self, msg, info):
        checked = self._check.state(msg)
        if checked is not None:
            self._record_errors(self._transitions.state(*checked, info['source_timestamp']))

    def _record_errors(self, transitions):
        for _, _, predicted, actual in transitions:
            error = float(np.linalg.norm(predicted - actual))
            self._errors.append(error)
            self._error_pub.publish(Float64(data=error))

    def _publish_diagnostics(self):
        fresh_drops, dropped = self._check.drops_since_report()
        errors = np.array(self._errors)
        level, message = DiagnosticStatus.OK, 'ok'
        if fresh_drops:
            level, message = DiagnosticStatus.WARN, f'dropped {fresh_drops} invalid messages'
        elif not len(errors):
            message = 'no transitions observed yet'
        values = {'transitions': self._transitions.completed, 'transition_gaps': self._transitions.gaps,
                  'error_mean': f'{errors.mean():.4f}' if len(errors) else 'nan',
                  'error_p90': f'{np.percentile(errors, 90):.4f}' if len(errors) else 'nan',
                  'error_window': len(errors), 'messages_dropped': dropped, **self._check.dropped}
        publish_diagnostics(self, self._diag_pub, 'one-step prediction', level, message, self._hardware_id, values)


main = main_for(DynamicsNode, 'morec_dynamics')

if __name__ == '__main__':
    sys.exit(main())
