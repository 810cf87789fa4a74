"""What the model nodes (dynamics, filter, controller) share: parameters, input checks, bundles, diagnostics."""

from collections import Counter
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.logging import get_logger
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray, MultiArrayDimension

from morec.bundle import ENSEMBLE_ONNX, REWARD_ONNX
from morec.runtime import ModelFileError, OnnxDynamics, OnnxReward
from morec.task_spec import TaskSpec, TaskSpecError, sim_dir

# What ros2_control's joint_state_broadcaster and forward_command_controller use (reliable,
# volatile, depth 10): monitors match a real robot's publishers without an adapter.
MONITOR_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def declare(node, name, default, description):
    """Declare a parameter with its description and return its value."""
    return node.declare_parameter(name, default, ParameterDescriptor(description=description)).value


def bundle_dir(value: str, task: TaskSpec) -> Path:
    """The `bundle` parameter: a directory, or '' for models/<task> beside the task specs' sim/ directory."""
    return Path(value) if value else sim_dir().parent / 'models' / task.name


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


class InputCheck:
    """Validates /joint_states and commands against the task spec; bad messages are dropped, counted and warned about.

    A JointState must carry every joint the observation needs with matching position and velocity
    arrays, finite values, and a stamp not earlier than the last accepted one (equal stamps are
    fine: the sim republishes the time of a finished episode's last state after a reset).
    """

    def __init__(self, node, task: TaskSpec):
        self.task = task
        self._logger = node.get_logger()
        self.dropped = Counter()
        self._last_stamp = None

    def state(self, msg) -> tuple[np.ndarray, int] | None:
        """(observation, stamp in ns) of a valid JointState, else None."""
        try:
            obs = self.task.observation_from_joint_state(msg.name, msg.position, msg.velocity)
        except ValueError as e:
            return self._drop('state_malformed', str(e))
        if not np.all(np.isfinite(obs)):
            return self._drop('state_non_finite', str(obs.tolist()))
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if self._last_stamp is not None and stamp < self._last_stamp:
            return self._drop('state_stamp_backwards', f'{stamp} ns after {self._last_stamp} ns')
        self._last_stamp = stamp
        return obs, stamp

    def command(self, msg) -> np.ndarray | None:
        command = np.asarray(msg.data, dtype=np.float64)
        if command.shape != (self.task.action_dim,):
            return self._drop('command_wrong_length', f'{command.size} values, expected {self.task.action_dim}')
        if not np.all(np.isfinite(command)):
            return self._drop('command_non_finite', str(command.tolist()))
        return command

    def restart(self) -> None:
        """Accept any stamp next: the state source went silent and may come back with its clock reset."""
        self._last_stamp = None

    def _drop(self, kind, detail):
        self.dropped[kind] += 1
        self._logger.warning(f'dropped message ({kind}): {detail}', throttle_duration_sec=5.0)
        return None


class Transitions:
    """Pairs states and commands into real transitions (s, a, s') one control period apart.

    A command is taken to apply to the latest state; the next state completes the transition when
    its stamp is one control period later (a reset, which keeps the stamp, or a gap of lost
    messages ends no transition). Whatever the node attached to the command comes back with it.
    """

    def __init__(self, control_period: float):
        self._period_ns = control_period * 1e9
        self.latest = None  # (obs, stamp) of the latest state
        self._pending = None  # (obs, command, attachment) awaiting the next state
        self.completed = 0
        self.gaps = 0

    def command(self, command: np.ndarray, attachment=None) -> None:
        if self.latest is not None:
            self._pending = (self.latest[0], command, attachment)

    def state(self, obs: np.ndarray, stamp: int):
        """Record a state; return (s, a, attachment, s') if it completes a transition, else None."""
        previous, pending = self.latest, self._pending
        self.latest, self._pending = (obs, stamp), None
        if previous is None or pending is None or stamp == previous[1]:
            return None
        if abs(stamp - previous[1] - self._period_ns) > 0.5 * self._period_ns:
            self.gaps += 1
            return None
        self.completed += 1
        return pending[0], pending[1], pending[2], obs


def diagnostics(node, publisher, what: str, level, message: str, hardware_id: str, values: dict) -> None:
    status = DiagnosticStatus(level=level, name=f'{node.get_name()}: {what}', message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = node.get_clock().now().to_msg()
    publisher.publish(msg)


def main_for(node_class, name: str):
    """A node's main(): a node that cannot start says why (FATAL, no traceback) and exits with 1."""

    def main(args=None):
        rclpy.init(args=args)
        try:
            node = node_class()
        except (ModelFileError, TaskSpecError, ParameterException, ValueError) as e:
            get_logger(name).fatal(f'cannot start: {e}')
            rclpy.try_shutdown()
            return 1
        try:
            rclpy.spin(node)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            node.destroy_node()
            rclpy.try_shutdown()
        return 0

    return main
