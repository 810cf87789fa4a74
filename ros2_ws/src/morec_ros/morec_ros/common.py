"""What the model nodes (dynamics, filter, controller) and the command guard share: bundles and transitions."""

import bisect
from pathlib import Path

import numpy as np
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension

from morec.bundle import ENSEMBLE_ONNX, REWARD_ONNX
from morec.runtime import ModelFileError, OnnxDynamics, OnnxReward
from morec.share import share_dir
from morec.task_spec import TaskSpec
from morec_ros.input_check import InputCheck

# What ros2_control's joint_state_broadcaster and forward_command_controller use (reliable,
# volatile, depth 10): monitors match a real robot's publishers without an adapter, and the command
# guard subscribes and publishes as a forward_command_controller's peers do.
MONITOR_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def watch_robot(node, check: InputCheck, on_state, command_topic: str, on_command, diagnostics_period: float,
                on_diagnostics) -> None:
    """A monitor's subscriptions: /joint_states, the base's odometry where the task has one (into `check`), and the
    commands, with ros2_control's QoS; and its diagnostics timer on the steady clock, so reports keep coming when a
    sim publishing /clock (use_sim_time) stops."""
    node.create_subscription(JointState, 'joint_states', on_state, MONITOR_QOS)
    if check.task.base:
        node.create_subscription(Odometry, check.task.base.topic, check.odometry, MONITOR_QOS)
    node.create_subscription(Float64MultiArray, command_topic, on_command, MONITOR_QOS)
    node.create_timer(diagnostics_period, on_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))


def bundle_dir(value: str, task: TaskSpec) -> Path:
    """The `bundle` parameter: a directory, or '' for the shipped models/<task>."""
    return Path(value) if value else share_dir('morec') / 'models' / task.name


def model_file(value: str) -> Path:
    """A model file parameter: absolute, or relative to where morec's files are shipped (the
    repository root in a checkout, share/morec when installed: models/... either way), so that one
    parameter file works whatever directory the nodes start in."""
    path = Path(value)
    return path if path.is_absolute() else share_dir('morec') / path


def load_dynamics(bundle: Path, task: TaskSpec, device: str, threads: int) -> OnnxDynamics:
    model = OnnxDynamics(bundle / ENSEMBLE_ONNX, device, threads, task.obs_dim, task.action_dim)
    _check_task(model.meta, bundle / ENSEMBLE_ONNX, task)
    return model


def load_reward(bundle: Path, task: TaskSpec, device: str, threads: int) -> OnnxReward:
    model = OnnxReward(bundle / REWARD_ONNX, device, threads, task.obs_dim, task.action_dim)
    _check_task(model.meta, bundle / REWARD_ONNX, task)
    return model


def _check_task(meta: dict, path: Path, task: TaskSpec) -> None:
    if meta.get('env_id') not in (None, task.env_id):
        raise ModelFileError(f"{path} was trained on {meta['env_id']} but the task is {task.env_id}: "
                             f'set the bundle parameter to a bundle made for {task.name}')


def matrix(array: np.ndarray, labels: tuple[str, str]) -> Float64MultiArray:
    """A 2-D array as Float64MultiArray with its layout (row-major, as MultiArrayLayout defines it)."""
    rows, cols = array.shape
    msg = Float64MultiArray(data=np.asarray(array, np.float64).ravel().tolist())
    msg.layout.dim = [MultiArrayDimension(label=labels[0], size=rows, stride=rows * cols),
                      MultiArrayDimension(label=labels[1], size=cols, stride=cols)]
    return msg


def labelled(values: dict) -> Float64MultiArray:
    """Named numbers as one Float64MultiArray: the dimension's label lists the names, comma-separated, in order."""
    msg = Float64MultiArray(data=[float(v) for v in values.values()])
    msg.layout.dim = [MultiArrayDimension(label=','.join(values), size=len(values), stride=len(values))]
    return msg


def named(msg: Float64MultiArray) -> dict[str, float]:
    """A `labelled` message's numbers by name."""
    return dict(zip(msg.layout.dim[0].label.split(','), msg.data))


class Transitions:
    """Pairs states and commands into real transitions (s, a, s'), one per control period, at any state rate.

    A command starts a control period: it applies to the latest state sent before it (the robot acts on
    the latest command), and the period ends at the state whose stamp is nearest to that state's stamp
    plus one control period. Nearest, not interpolated: s' is a state the robot reported, off by at
    most half the state interval (0.5 ms at 1000 Hz, 20 ms at 25 Hz). So a broadcaster at 100-1000 Hz
    and a controller at its own period make one transition per command, and one state per period
    (lockstep) pairs state k with state k+1. When no state lies within half a period of the end (lost
    messages) the period is a gap; a state stamped no later than the start before the end (a reset
    repeats the stamp, a restarted robot starts over) ends the period without a transition.

    Messages are ordered by when they were sent (their DDS source timestamps), not by when this node
    got round to them: a busy node may take state k+1 before command k, which was sent first, and
    must not pair command k with state k+1. Whatever the node attached to a command comes back with it.
    """

    def __init__(self, control_period: float, keep_periods: float = 3.0, min_states: int = 8):
        self._period_ns = control_period * 1e9
        self._keep_ns = keep_periods * self._period_ns  # states stamped this long before the newest are dropped
        self._min_states = min_states
        self._sent = []  # send times of recent states, ascending (bisect keys)
        self._states = []  # (obs, stamp) of those states, in the same order
        self._commands = {}  # sent time of a state -> (sent, command, attachment) of the latest command in it
        self._closed = set()  # sent times of states whose outgoing transition is settled
        self.completed = 0
        self.gaps = 0

    def applies_to(self, sent: int) -> np.ndarray | None:
        """The observation a command sent at `sent` acts on, None before the first state."""
        i = self._before(sent)
        return None if i < 0 else self._states[i][0]

    def command(self, command: np.ndarray, sent: int, attachment=None) -> list[tuple]:
        """Record a command; return the transitions it completes (when the period's end came first)."""
        i = self._before(sent)
        if i < 0:
            return []
        key = self._sent[i]
        if key not in self._commands or self._commands[key][0] < sent:
            self._commands[key] = (sent, command, attachment)
        return self._settle(key)

    def state(self, obs: np.ndarray, stamp: int, sent: int) -> list[tuple]:
        """Record a state; return the (s, a, attachment, s') transitions it completes."""
        i = bisect.bisect_left(self._sent, sent)
        self._sent.insert(i, sent)
        self._states.insert(i, (obs, stamp))
        done = [t for key in sorted(self._commands) for t in self._settle(key)]
        newest = self._states[-1][1]
        while len(self._sent) > self._min_states and not 0 <= newest - self._states[0][1] <= self._keep_ns:
            dropped = self._sent.pop(0)
            self._states.pop(0)
            self._commands.pop(dropped, None)
            self._closed.discard(dropped)
        return done

    def _before(self, sent: int) -> int:
        """Index of the latest state sent before `sent` (-1: none)."""
        return bisect.bisect_left(self._sent, sent) - 1

    def _settle(self, key: int) -> list[tuple]:
        """The transition from the state sent at `key` once the state nearest its period's end is known."""
        if key in self._closed:
            return []
        i = bisect.bisect_left(self._sent, key)
        start = self._states[i][1]
        end = start + self._period_ns
        for j in range(i + 1, len(self._states)):
            stamp = self._states[j][1]
            if stamp <= start:
                self._closed.add(key)
                return []
            if stamp >= end:
                break
        else:
            return []  # the period has not ended yet
        if j - 1 > i and end - self._states[j - 1][1] < stamp - end:
            j -= 1  # the state just before the end is nearer
        self._closed.add(key)
        if abs(self._states[j][1] - end) > 0.5 * self._period_ns:
            self.gaps += 1
            return []
        self.completed += 1
        _, command, attachment = self._commands[key]
        return [(self._states[i][0], command, attachment, self._states[j][0])]
