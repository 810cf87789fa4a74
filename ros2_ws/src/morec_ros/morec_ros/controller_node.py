"""Controller node: sampling MPC through the filtered learned model, or an exported policy.

With `model: mujoco` the planner plans through the task's nominal MuJoCo model instead of the learned
ensemble: the upper bound of the closed-loop benchmark (same planner, true dynamics).

Commands the robot as a client of a forward_command_controller: one value per actuator on the
command topic, clipped to the actuator limits. A planner thread plans from the latest valid
/joint_states with MPPI or CEM through FilteredDynamics on ONNX Runtime, in-process (a ROS round
trip per model step would be far too slow), and publishes the plan on /morec/plan. Its status goes to
/diagnostics for people and, as numbers with their names, to /morec/controller_metrics for programs.

When commands go out, latency compensation and the watchdog are the ControlLoop's (control_loop.py):
this node turns parameters, messages and timers into its inputs and publishes what it returns. The
timers run on the steady clock, so the watchdog fires even when a simulator that publishes /clock dies.
"""

import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from morec.task_spec import load_task_spec
from morec_ros.common import labelled, matrix
from morec_ros.control_loop import ControlLoop, shown
from morec_ros.controller import Controller
from morec_ros.diagnostics import LEVELS, publish_diagnostics
from morec_ros.node_main import main_for
from morec_ros.node_params import PLANNER_CONFIGS, ControllerParams
from morec_ros.parameters import declare_params

# Lockstep: the sim publishes each state once (transient-local) and waits for the answer, so a
# controller that joins late must still receive it. Real time: only the freshest state matters,
# and a best-effort reader matches reliable and best-effort publishers alike.
LOCKSTEP_STATE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)
REALTIME_STATE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
# The sim asks for reliable commands: a lost one would stall a lockstep loop.
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class ControllerNode(Node):

    def __init__(self, **kwargs):
        super().__init__('morec_controller', **kwargs)
        p = declare_params(self, ControllerParams)
        settings = declare_params(self, PLANNER_CONFIGS[p.planner])  # the chosen planner's settings
        spec = load_task_spec(p.task)
        self._controller = Controller(spec, p, settings)

        self._lock = threading.Condition()  # the loop is called from the executor and the planner thread
        self._loop = ControlLoop(spec, p.loop, self._controller.act, self._controller.predict, self.get_logger(),
                                 time.monotonic())
        self._cmd_pub = self.create_publisher(Float64MultiArray, p.command_topic, COMMAND_QOS)
        self._plan_pub = self.create_publisher(Float64MultiArray, 'morec/plan', 1)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._metrics_pub = self.create_publisher(Float64MultiArray, 'morec/controller_metrics', 10)
        self.create_subscription(JointState, 'joint_states', self._on_state,
                                 LOCKSTEP_STATE_QOS if p.loop.lockstep else REALTIME_STATE_QOS)
        if spec.base:  # the base joints' state comes from odometry
            self.create_subscription(Odometry, spec.base.topic, self._on_odometry,
                                     LOCKSTEP_STATE_QOS if p.loop.lockstep else REALTIME_STATE_QOS)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(spec.control_period, self._on_tick, clock=steady)
        self.create_timer(p.diagnostics_period, self._publish_diagnostics, clock=steady)

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._plan_loop, name='planner', daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"{spec.env_id}: {self._controller.describe}, {'lockstep' if p.loop.lockstep else 'real time'}, "
            f'period {spec.control_period} s, commands on {p.command_topic}')

    # ---- executor thread ----------------------------------------------------------------------
    def _on_state(self, msg):
        with self._lock:
            if self._loop.receive(msg, time.monotonic()):
                self._lock.notify()

    def _on_odometry(self, msg):
        with self._lock:
            self._loop.odometry(msg)

    def _on_tick(self):
        with self._lock:
            command = self._loop.tick(time.monotonic())
            if self._loop.due:  # real time: the state that arrived since the last plan is planned for now
                self._lock.notify()
        self._send(command)

    def _publish_diagnostics(self):
        with self._lock:
            level, message, metrics = self._loop.status(time.monotonic())
        publish_diagnostics(self, self._diag_pub, 'controller', LEVELS[level], message, self._controller.describe,
                    {'mode': self._controller.mode, **shown(metrics)})
        self._metrics_pub.publish(labelled(metrics))  # the same figures as numbers, for programs

    # ---- planner thread -----------------------------------------------------------------------
    def _plan_loop(self):
        while not self._stop.is_set():
            with self._lock:
                if not self._lock.wait_for(lambda: self._loop.due or self._stop.is_set(), 0.1):
                    continue
                if self._stop.is_set():
                    return
                request = self._loop.request(time.monotonic())
            actions, states, value = self._loop.plan(request)
            if not self.context.ok():
                return  # Ctrl-C shut rclpy down while planning (destroy_node() stops this thread after)
            with self._lock:
                command = self._loop.answer(request, actions, value, time.monotonic())
            self._send(command)
            if states is not None:  # the prediction along the plan is rolled out after the command is out
                self._plan_pub.publish(matrix(states(), ('horizon', 'state')))

    def _send(self, command):
        if command is not None:
            self._cmd_pub.publish(Float64MultiArray(data=command.tolist()))

    def destroy_node(self):
        self._stop.set()
        with self._lock:
            self._lock.notify()
        self._thread.join(timeout=5.0)
        return super().destroy_node()


main = main_for(ControllerNode, 'morec_controller')

if __name__ == '__main__':
    sys.exit(main())
