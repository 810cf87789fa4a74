"""What the nodes accept from /joint_states and command topics (ROS-free: messages are read by their fields)."""

from collections import Counter

import numpy as np

from morec.task_spec import TaskSpec


class InputCheck:
    """Validates /joint_states and commands against the task spec; bad messages are dropped, counted and warned about.

    A JointState must carry every joint the observation needs with matching position and velocity
    arrays, finite values, and a stamp not earlier than the last accepted one (equal stamps are
    fine: the sim republishes the time of a finished episode's last state after a reset).
    Warnings go to `logger`, a node's logger (throttled) or anything with its warning().
    """

    def __init__(self, logger, task: TaskSpec):
        self.task = task
        self._logger = logger
        self.dropped = Counter()
        self._last_stamp = None

    def state(self, msg) -> tuple[np.ndarray, int] | None:
        """(observation, stamp in ns) of a valid JointState, else None."""
        try:
            obs = self.task.observation_from_joint_state(msg.name, msg.position, msg.velocity)
        except ValueError as e:
            return self.drop('state_malformed', str(e))
        if not np.all(np.isfinite(obs)):
            return self.drop('state_non_finite', str(obs.tolist()))
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if self._last_stamp is not None and stamp < self._last_stamp:
            return self.drop('state_stamp_backwards', f'{stamp} ns after {self._last_stamp} ns')
        self._last_stamp = stamp
        return obs, stamp

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

    def drop(self, kind, detail) -> None:
        """Count and warn about a message dropped for `kind`; None, what a check returns for it."""
        self.dropped[kind] += 1
        self._logger.warning(f'dropped message ({kind}): {detail}', throttle_duration_sec=5.0)
        return None
