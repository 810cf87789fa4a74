"""Command guard node: the only publisher on the robot's command topic, in a process of its own.

The controller publishes on a stack-internal topic (its command_topic, /morec/command_request in the
shipped configs); this node forwards the commands CommandGuard (command_guard.py) accepts to the
robot's forward command controller and commands zero when the controller falls silent or dies, and as
the guard itself stops (SIGINT or SIGTERM).
Both topics use the forward_command_controller's QoS (reliable, depth 10). The check timer runs
on the steady clock, so it fires when a simulator that publishes /clock dies too.
"""

import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray

from morec.task_spec import load_task_spec
from morec_ros.command_guard import CommandGuard, GuardConfig
from morec_ros.common import LEVELS, MONITOR_QOS, declare, diagnostics, main_for

# Silence is noticed within a quarter period of its limit: kill to zero stays under 3 periods at the default 2.
CHECKS_PER_PERIOD = 4


class GuardNode(Node):

    def __init__(self):
        super().__init__('morec_guard')
        task = declare(self, 'task', 'halfcheetah', 'task name, Gymnasium id or path of a spec YAML (sim/)')
        request_topic = declare(self, 'request_topic', '/morec/command_request',
                                "the controller's commands (its command_topic parameter)")
        command_topic = declare(self, 'command_topic', '/effort_controller/commands',
                                "the robot's forward command controller")
        silent_periods = declare(self, 'silent_periods', GuardConfig.silent_periods,
                                 'command zero after this many control periods without a valid command')
        max_rate = declare(self, 'max_commands_per_period', GuardConfig.max_commands_per_period,
                           'commands beyond this many per control period (on average) are dropped')
        lockstep = declare(self, 'lockstep', GuardConfig.lockstep,
                           'the sim waits for each command: check and forward only')
        diagnostics_period = declare(self, 'diagnostics_period', 1.0, 'seconds between /diagnostics messages')
        if not diagnostics_period > 0:
            raise ValueError('diagnostics_period must be positive')
        spec = load_task_spec(task)
        self._hardware_id = f'{spec.env_id}: {request_topic} -> {command_topic}'
        self._guard = CommandGuard(spec, GuardConfig(silent_periods, max_rate, lockstep), self.get_logger(),
                                   time.monotonic())
        self._pub = self.create_publisher(Float64MultiArray, command_topic, MONITOR_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(Float64MultiArray, request_topic, self._on_request, MONITOR_QOS)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(spec.control_period / CHECKS_PER_PERIOD, self._on_tick, clock=steady)
        self.create_timer(diagnostics_period, self._publish_diagnostics, clock=steady)
        self.get_logger().info(f'{self._hardware_id}, zero after {self._guard.silent_after:.3f} s of silence'
                               + (' (lockstep: forwarding only)' if lockstep else ''))

    def _on_request(self, msg):
        self._send(self._guard.receive(msg, time.monotonic()))

    def _on_tick(self):
        self._send(self._guard.tick(time.monotonic()))

    def _send(self, command):
        if command is not None:
            self._pub.publish(Float64MultiArray(data=command.tolist()))

    def destroy_node(self):
        command = self._guard.stop()
        if command is not None:
            self._send(command)
            self._pub.wait_for_all_acked(Duration(seconds=1.0))  # the robot has it before the process ends
        return super().destroy_node()

    def _publish_diagnostics(self):
        level, message, values = self._guard.status(time.monotonic())
        diagnostics(self, self._diag_pub, 'command guard', LEVELS[level], message, self._hardware_id, values)


main = main_for(GuardNode, 'morec_guard', last_word=True)  # zeros as it stops

if __name__ == '__main__':
    sys.exit(main())
