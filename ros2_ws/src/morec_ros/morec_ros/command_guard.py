"""The command guard without ROS: what reaches the robot's command topic, and zeros when the controller falls silent.

A forward command controller applies the latest command until it gets another, so a controller
process that dies leaves the robot on its last effort, and the controller's own watchdog dies with
it. The guard runs in a process of its own between the controller and the robot:
- receive(msg, now): a command from the controller; returns it when it is valid, else None (dropped,
  counted, warned about): one value per actuator (InputCheck), finite, within the actuator limits of
  the task spec, and at most `max_commands_per_period` per control period on average (a token bucket
  that holds one period's worth, so an answer and a fill-in in the same period both pass).
- tick(now): call often (the node: 4 times per period); returns zeros once no valid command has come
  for `silent_periods` control periods, then once per period until a valid command comes again.
- stop(): zeros as the guard stops. `morec up` and `ros2 launch` stop every node when one dies, so a
  stack that stops must not leave the robot on its last effort either.

Out-of-limit commands are rejected, not clipped: the controller already clips, so one that arrives
out of limits comes from a broken or misconfigured sender (wrong task spec, wrong units), and
clipping it would turn garbage into full effort in whatever direction it points. A rejected command
counts as silence: the robot keeps the last valid one, and zeros after `silent_periods`.
Before its first valid command the guard sends nothing: the robot has not been commanded yet.

In lockstep the sim waits for every command: a silent controller stops it, and a zero (or a command
dropped for its rate) would step it or stall it, so the guard checks each command but never
commands on its own or limits the rate.
What the guard cannot cover is its own death (SIGKILL, a crash): the robot then keeps the last command.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from morec.task_spec import TaskSpec
from morec_ros.input_check import InputCheck


@dataclass(frozen=True)
class GuardConfig:
    silent_periods: float = 2.0  # command zero after this many control periods without a valid command
    max_commands_per_period: float = 3.0  # more than this many on average are dropped
    lockstep: bool = False  # the sim waits for each command: check and forward, never command on its own

    def __post_init__(self):
        if not self.silent_periods > 0 or not self.max_commands_per_period >= 1:
            raise ValueError('silent_periods must be positive and max_commands_per_period at least 1')


class CommandGuard:

    def __init__(self, task: TaskSpec, cfg: GuardConfig, logger, now: float):
        self.task, self.cfg = task, cfg
        self.period = task.control_period
        self.silent_after = cfg.silent_periods * task.control_period
        self._logger = logger
        self._check = InputCheck(logger, task)
        self._tokens, self._refilled = cfg.max_commands_per_period, now  # the bucket starts full
        self._forwarded = None  # when the latest valid command went out; None before the first
        self._zeroed = None  # when the latest zero command went out
        self.silent = False
        self.counts = dict(forwarded=0, zeros=0, silent_events=0)

    def receive(self, msg, now: float) -> np.ndarray | None:
        """A command (read by its data field) to forward, or None when it is dropped."""
        command = self._check.command(msg)
        if command is None:
            return None
        if np.any(command < self.task.action_low) or np.any(command > self.task.action_high):
            return self._check.drop('command_out_of_limits', f'{command.tolist()} beyond '
                                    f'[{self.task.action_low.tolist()}, {self.task.action_high.tolist()}]')
        if not self.cfg.lockstep:
            burst = self.cfg.max_commands_per_period
            self._tokens = min(burst, self._tokens + (now - self._refilled) * burst / self.period)
            self._refilled = now
            if self._tokens < 1.0:
                return self._check.drop('command_rate', f'more than {burst:g} commands per control period')
            self._tokens -= 1.0
        if self.silent:
            self._logger.info('valid commands again: forwarding them')
            self.silent = False
        self._forwarded = now
        self.counts['forwarded'] += 1
        return command

    def tick(self, now: float) -> np.ndarray | None:
        """Zeros to publish while the controller is silent, else None."""
        if self.cfg.lockstep or self._forwarded is None or now - self._forwarded <= self.silent_after:
            return None
        if not self.silent:
            self.silent = True
            self.counts['silent_events'] += 1
            self._logger.error(f'no valid command for {now - self._forwarded:.3f} s (limit {self.silent_after:.3f} s): '
                               'commanding zero until the controller sends again')
        elif now - self._zeroed < self.period:
            return None
        self._zeroed = now
        self.counts['zeros'] += 1
        return np.zeros(self.task.action_dim)

    def stop(self) -> np.ndarray | None:
        """Zeros to publish as the guard stops, once it has forwarded a command (never in lockstep)."""
        if self.cfg.lockstep or self._forwarded is None:
            return None
        self.counts['zeros'] += 1
        return np.zeros(self.task.action_dim)

    def status(self, now: float) -> tuple[str, str, dict]:
        """(level 'ok', 'warn' or 'error', message, metrics) since the previous call, for /diagnostics."""
        fresh_drops, dropped = self._check.drops_since_report()
        silence = now - self._forwarded if self._forwarded is not None else float('nan')
        if self.silent:
            level, message = 'error', f'controller silent for {silence:.2f} s: commanding zero'
        elif self._forwarded is None:
            level, message = 'warn', 'waiting for the first valid command'
        elif fresh_drops:
            level, message = 'warn', f'dropped {fresh_drops} invalid commands'
        else:
            level, message = 'ok', 'ok'
        values = {'lockstep': self.cfg.lockstep, **self.counts, 'silent_for_s': f'{silence:.3f}',
                  'commands_dropped': dropped, **self._check.dropped}
        return level, message, values
