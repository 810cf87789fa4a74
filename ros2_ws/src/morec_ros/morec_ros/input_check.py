"""What the nodes accept from /joint_states, odometry and command topics
(ROS-free: messages are read by their fields)."""

from collections import Counter, deque

import numpy as np

from morec.task_spec import BaseState, TaskSpec

# Odometry messages kept for matching stamps: a base publishing faster than the joint states still has
# the one nearest each state among them.
ODOMETRY_KEPT = 16


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


class InputCheck:
    """Validates /joint_states and commands against the task spec; bad messages are dropped, counted and warned about.

    A JointState must carry every joint the observation needs with matching position and velocity
    arrays, finite values, and a stamp not earlier than the last accepted one (equal stamps are
    fine: the sim republishes the time of a finished episode's last state after a reset).
    For a spec with a `base:` section, the base joints' entries come from the odometry (odometry())
    stamped nearest the JointState among the latest few; a state before any odometry is dropped.
    Warnings go to `logger`, a node's logger (throttled) or anything with its warning().
    """

    def __init__(self, logger, task: TaskSpec):
        self.task = task
        self._logger = logger
        self.dropped = Counter()
        self._reported = 0  # drops counted up to the previous drops_since_report()
        self._last_stamp = None
        self._odometry = deque(maxlen=ODOMETRY_KEPT)  # (stamp in ns, BaseState)

    def state(self, msg) -> tuple[np.ndarray, int] | None:
        """(observation, stamp in ns) of a valid JointState, else None."""
        try:
            stamp = _stamp_ns(msg)
            base = min(self._odometry, key=lambda kept: abs(kept[0] - stamp))[1] if self._odometry else None
            obs = self.task.observation_from_joint_state(msg.name, msg.position, msg.velocity, base)
        except ValueError as e:
            return self.drop('state_malformed', str(e))
        if not np.all(np.isfinite(obs)):
            return self.drop('state_non_finite', str(obs.tolist()))
        if self._last_stamp is not None and stamp < self._last_stamp:
            return self.drop('state_stamp_backwards', f'{stamp} ns after {self._last_stamp} ns')
        self._last_stamp = stamp
        return obs, stamp

    def odometry(self, msg) -> None:
        """Keep a nav_msgs/Odometry for the base entries of the states that follow."""
        base = BaseState.from_odometry(msg)
        if not all(np.all(np.isfinite(v)) for v in (base.position, base.orientation, base.linear, base.angular)):
            return self.drop('odometry_non_finite', f'position {base.position.tolist()}, '
                                                   f'twist {base.linear.tolist()} {base.angular.tolist()}')
        self._odometry.append((_stamp_ns(msg), base))
        return None

    def command(self, msg) -> np.ndarray | None:
        command = np.asarray(msg.data, dtype=np.float64)
        if command.shape != (self.task.action_dim,):
            return self.drop('command_wrong_length', f'{command.size} values, expected {self.task.action_dim}')
        if not np.all(np.isfinite(command)):
            return self.drop('command_non_finite', str(command.tolist()))
        return command

    def restart(self) -> None:
        """Accept any stamp next: the state source went silent and may come back with its clock reset."""
        self._last_stamp = None
        self._odometry.clear()

    def drops_since_report(self) -> tuple[int, int]:
        """(messages dropped since the previous call, in all): a status report's fresh count and its total."""
        total = sum(self.dropped.values())
        fresh, self._reported = total - self._reported, total
        return fresh, total

    def drop(self, kind, detail) -> None:
        """Count and warn about a message dropped for `kind`; None, what a check returns for it."""
        self.dropped[kind] += 1
        self._logger.warning(f'dropped message ({kind}): {detail}', throttle_duration_sec=5.0)
        return None
