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
from morec_ros.command_guard import CommandGuard
from morec_ros.common import MONITOR_QOS
from morec_ros.diagnostics import LEVELS, publish_diagnostics
from morec_ros.node_main import main_for
from morec_ros.node_params import GuardParams
from morec_ros.parameters import declare_params

# Silence is noticed within a quarter period of its limit: kill to zero stays under 3 periods at the default 2.
CHECKS_PER_PERIOD = 4


class GuardNode(Node):

    def __init__(self, **kwargs):
        super().__init__('morec_guard', **kwargs)
        p = declare_params(self, GuardParams)
        spec = load_task_spec(p.task)
        self._hardware_id = f'{spec.env_id}: {p.request_topic} -> {p.command_topic}'
        self._guard = CommandGuard(spec, p.guard, self.get_logger(), time.monotonic())
        self._pub = self.create_publisher(Float64MultiArray, p.command_topic, MONITOR_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(Float64MultiArray, p.request_topic, self._on_request, MONITOR_QOS)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(spec.control_period / CHECKS_PER_PERIOD, self._on_tick, clock=steady)
        self.create_timer(p.diagnostics_period, self._publish_diagnostics, clock=steady)
        self.get_logger().info(f'{self._hardware_id}, zero after {self._guard.silent_after:.3f} s of silence'
                               + (' (lockstep: forwarding only)' if p.guard.lockstep else ''))

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
        publish_diagnostics(self, self._diag_pub, 'command guard', LEVELS[level], message, self._hardware_id, values)


main = main_for(GuardNode, 'morec_guard')

if __name__ == '__main__':
    sys.exit(main())
