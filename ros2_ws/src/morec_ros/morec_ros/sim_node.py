"""MuJoCo simulator node: stands in for a robot running joint_state_broadcaster and a forward command controller.

Publishes /joint_states (MJCF joint names, stamped with sim time) and /clock; for a task spec with a
`base:` section, /joint_states leaves out the base joints, as a real robot's joint_state_broadcaster
does, and nav_msgs/Odometry on the spec's topic carries the base body's pose and twist. Takes commands as a
forward_command_controller does: Float64MultiArray, one value per actuator in model order.
'realtime' steps on a wall timer and holds the latest command; 'lockstep' advances one control
period per command, so a controller slower than real time still sees the dynamics it would at speed;
with lockstep_paced it never runs faster than real_time_factor x real time either, so that nodes
watching the loop (dynamics, filter, recorders) get the control period a real robot would give them.
With start_paused the robot stays silent (no state, no steps) until ~/pause is called with false, so
a bringup can start the first episode once every node is listening.
"""

import sys
import time
from collections import Counter

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray
from std_srvs.srv import SetBool, Trigger

from morec.simulator import SimulatedRobot
from morec.task_spec import VARIANT_KEYS, Variant, load_task_spec
from morec_ros.diagnostics import publish_diagnostics
from morec_ros.node_main import main_for
from morec_ros.node_params import SimParams
from morec_ros.parameters import declare, declare_params, field_docs

# Reliable so that subscribers asking for reliable delivery (the ROS default) match as well as
# sensor-data (best-effort) ones; transient-local with depth 1 so a controller started after the
# sim still receives the current state (a lockstep loop waits for it), but never a stale history.
STATE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Only the latest time matters; a reliable writer also serves the best-effort /clock subscription
# that rclpy and rclcpp create for use_sim_time.
CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
# Lockstep applies every command exactly once and a lost one stalls the loop: ask for reliable
# delivery (matches default-QoS publishers; a best-effort publisher would not match).
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def joint_state(robot: SimulatedRobot, stamp: Time) -> JointState:
    """The robot's state joints (a floating base's go out as odometry) as a joint_state_broadcaster sends them."""
    spec = robot.spec
    published = [spec.joints.index(j) for j in spec.state_joints]
    position, velocity, effort = (values[published] for values in robot.joint_state())
    msg = JointState(name=list(spec.state_joints),
                     position=position.tolist(), velocity=velocity.tolist(), effort=effort.tolist())
    msg.header.stamp = stamp
    return msg


class SimNode(Node):

    def __init__(self, **kwargs):
        super().__init__('morec_sim', **kwargs)
        p = declare_params(self, SimParams)
        self._mode, self._paced, self._publish_clock = p.mode, p.lockstep_paced, p.publish_clock
        spec = load_task_spec(p.task)
        variant = spec.variant(p.variant)
        # The variant's values are the defaults; parameters override them one by one.
        docs = field_docs(Variant, frozenset(VARIANT_KEYS))
        variant = variant.replace(**{key: declare(self, key, getattr(variant, key), f"overrides the variant's {key}: "
                                                  f'{docs.get(key, "")}') for key in VARIANT_KEYS})
        if self.get_parameter('use_sim_time').value:
            raise ValueError('the sim node publishes /clock itself and cannot run on sim time')

        self._robot = SimulatedRobot(spec, variant, p.seed, p.episode_length)
        self._period_ns = round(spec.control_period * 1e9)
        self._min_wall_period = spec.control_period / p.real_time_factor
        self._next_step = 0.0  # lockstep_paced: the steady time before which no step is taken
        self._pending_step = None  # lockstep_paced: the one-shot timer of a step that waits for its time
        self._command = np.zeros(spec.action_dim)
        self._paused = p.start_paused
        # Silent until started: a controller that has never seen a state waits without its watchdog firing.
        self._started = not p.start_paused
        self._received = 0
        self._clipped = 0
        self._dropped = Counter(wrong_length=0, non_finite=0)
        self._dropped_reported = 0

        self._state_pub = self.create_publisher(JointState, 'joint_states', STATE_QOS)
        # Odometry goes out before each JointState, so a node assembling observations has it first.
        self._odom_pub = self.create_publisher(Odometry, spec.base.topic, STATE_QOS) if spec.base else None
        self._clock_pub = self.create_publisher(Clock, '/clock', CLOCK_QOS)
        self._return_pub = self.create_publisher(Float64, 'morec/episode_return', 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(Float64MultiArray, p.command_topic, self._on_command, COMMAND_QOS)
        self.create_service(Trigger, '~/reset', self._on_reset)
        self.create_service(SetBool, '~/pause', self._on_pause)
        self._ticker = None
        if self._mode == 'realtime':
            self._ticker = self.create_timer(spec.control_period / p.real_time_factor, self._on_tick)
        self.create_timer(p.diagnostics_period, self._publish_diagnostics)

        if self._started:
            self._publish_time()
            self._publish_state()
        actuators = ', '.join(a.name for a in spec.actuators)
        self.get_logger().info(
            f'{spec.env_id} ({variant.name}), {self._mode}, period {spec.control_period} s; '
            f'commands on {p.command_topic}: [{actuators}]; {variant}')

    def _on_command(self, msg):
        command = np.asarray(msg.data, dtype=np.float64)
        n = self._robot.spec.action_dim
        if command.shape != (n,):
            self._drop('wrong_length', f'{command.size} values, expected {n}')
        elif not np.all(np.isfinite(command)):
            self._drop('non_finite', str(command.tolist()))
        else:
            self._accept(command)

    def _drop(self, kind, detail):
        self._dropped[kind] += 1
        self.get_logger().warning(f'dropped command ({kind}): {detail}', throttle_duration_sec=5.0)

    def _accept(self, command):
        spec = self._robot.spec
        self._received += 1
        self._clipped += bool(np.any(command < spec.action_low) or np.any(command > spec.action_high))
        self._command = command
        if self._mode == 'lockstep' and not self._paused and self._pending_step is None:
            wait = self._next_step - time.monotonic() if self._paced else 0.0
            if wait > 0:  # the step runs at its time, with the latest command by then
                self._pending_step = self.create_timer(wait, self._paced_step)
            else:
                self._advance()

    def _paced_step(self):
        self.destroy_timer(self._pending_step)
        self._pending_step = None
        if not self._paused:
            self._advance()

    def _on_tick(self):
        if not self._paused:
            self._advance()

    def _advance(self):
        """One control period; the tick after an episode ends starts the next one instead."""
        self._next_step = time.monotonic() + self._min_wall_period
        if self._robot.done:
            self._robot.reset()
        else:
            self._robot.step(self._command)
            self._publish_time()
            if self._robot.done:
                self._report_episode()
        self._publish_state()

    def _on_reset(self, request, response):
        if self._robot.episode_steps and not self._robot.done:
            self.get_logger().info(f'episode {self._robot.episode} aborted after {self._robot.episode_steps} steps')
        self._robot.reset()
        self._publish_state()
        response.success = True
        response.message = f'episode {self._robot.episode} started'
        return response

    def _on_pause(self, request, response):
        self._paused = request.data
        if not self._paused and not self._started:
            self._started = True
            if self._ticker is not None:
                self._ticker.reset()  # the first state gets a full period, as every later one does
            self._publish_time()
            self._publish_state()
        response.success = True
        response.message = 'paused' if self._paused else 'running'
        return response

    def _report_episode(self):
        robot = self._robot
        self._return_pub.publish(Float64(data=robot.episode_return))
        self.get_logger().info(
            f'episode {robot.episode}: return {robot.episode_return:.3f} over {robot.episode_steps} steps')

    def _stamp(self):
        # Sim time is the physics time simulated so far, across episodes (it never jumps back).
        ns = self._robot.total_steps * self._period_ns
        return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)

    def _publish_time(self):
        if self._publish_clock:
            self._clock_pub.publish(Clock(clock=self._stamp()))

    def _publish_state(self):
        stamp = self._stamp()
        if self._odom_pub is not None:
            self._odom_pub.publish(self._odometry(stamp))
        self._state_pub.publish(joint_state(self._robot, stamp))

    def _odometry(self, stamp):
        base = self._robot.base_state()
        msg = Odometry(child_frame_id='base_link')
        msg.header.stamp, msg.header.frame_id = stamp, 'odom'
        pose, twist = msg.pose.pose, msg.twist.twist
        pose.position.x, pose.position.y, pose.position.z = base.position.tolist()
        q = pose.orientation
        q.x, q.y, q.z, q.w = base.orientation.tolist()
        twist.linear.x, twist.linear.y, twist.linear.z = base.linear.tolist()
        twist.angular.x, twist.angular.y, twist.angular.z = base.angular.tolist()
        return msg

    def _publish_diagnostics(self):
        dropped = sum(self._dropped.values())
        fresh = dropped - self._dropped_reported
        self._dropped_reported = dropped
        robot = self._robot
        values = {
            'mode': self._mode,
            'paused': self._paused,
            'episode': robot.episode,
            'episode_steps': robot.episode_steps,
            'total_steps': robot.total_steps,
            # Matched on the publisher's side: who gets the next state (a recorder or controller that is
            # not counted here yet misses it).
            'state_subscribers': self._state_pub.get_subscription_count(),
            'commands_received': self._received,
            'commands_clipped': self._clipped,
            'commands_dropped': dropped,
            **{f'commands_dropped_{kind}': count for kind, count in self._dropped.items()},
        }
        publish_diagnostics(self, self._diag_pub, 'simulator', DiagnosticStatus.WARN if fresh else DiagnosticStatus.OK,
                            f'dropped {fresh} malformed commands' if fresh else 'ok',
                            f'{robot.spec.env_id} ({robot.variant.name})', values)


main = main_for(SimNode, 'morec_sim')


if __name__ == '__main__':
    sys.exit(main())
