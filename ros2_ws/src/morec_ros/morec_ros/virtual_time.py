"""The controller against the simulated robot on a virtual clock: real time without waiting for it.

What a planning latency costs, apart from everything else a loaded machine does. The robot steps every
control period with the latest command it has, as the sim node in real time and a forward command
controller do; its state reaches the controller `transport` seconds later, and a command the robot just
as late. The controller's timer ticks at its own phase. The planner works on one plan at a time (the
node's planner thread) and each plan takes the seconds `latency(i)` says, while the plan itself is
computed for real, with the controller a params file describes (controller.py). Nothing waits, so an
episode runs as fast as its plans compute. `bench/latency_budget.py` sweeps the latency with it.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Callable

import numpy as np
from builtin_interfaces.msg import Time

from morec.simulator import SimulatedRobot
from morec.task_spec import TaskSpec, Variant
from morec_ros.control_loop import ControlLoop, LoopConfig
from morec_ros.sim_node import joint_state

# Events at the same moment: a command that arrives as the robot steps is applied by that step (the
# forward command controller reads its latest command at the start of its update).
COMMAND, STEP, STATE, TICK, ANSWER = range(5)


class _Log:
    """The loop's logger: a virtual run keeps the messages for the caller."""

    def __init__(self):
        self.lines = []

    def error(self, msg, **_):
        self.lines.append(msg)

    info = warning = error


@dataclass
class VirtualRun:
    episode_return: float
    steps: int
    in_time: float  # share of plans whose first action reached the robot before the step it was planned for
    counts: dict  # the loop's (plans, commands, deadline_misses, stale_events, ...)
    log: list


def lognormal_latency(p50: float, p99: float, seed: int = 0) -> Callable[[int], float]:
    """Plan latencies (s) with the given median and 99th percentile, as measured plan times spread."""
    sigma = np.log(p99 / p50) / 2.326
    rng = np.random.default_rng(seed)
    return lambda _: float(p50 * np.exp(sigma * rng.standard_normal()))


def run_episode(spec: TaskSpec, act, predict, loop_cfg: LoopConfig, latency: Callable[[int], float],
                variant: Variant | None = None, seed: int = 0, steps: int = 1000, transport: float = 0.001,
                tick_phase: float = 0.5) -> VirtualRun:
    """One episode of at most `steps` robot steps; `act` and `predict` are a Controller's."""
    if spec.base:
        raise ValueError(f'{spec.name}: virtual runs publish joint states only, not odometry')
    if loop_cfg.lockstep:
        raise ValueError('virtual runs are real time: the robot steps on its own clock')
    period = spec.control_period
    robot = SimulatedRobot(spec, variant or spec.variant('nominal'), seed, episode_length=steps)
    log = _Log()
    loop = ControlLoop(spec, loop_cfg, act, predict, log, now=0.0)
    events, order = [], itertools.count()

    def at(t, kind, payload=None):
        heapq.heappush(events, (t, kind, next(order), payload))

    def send(t, command):
        if command is not None:
            at(t + transport, COMMAND, command)

    busy, plans, in_time = False, 0, 0
    applied = np.zeros(spec.action_dim)

    def start_plan(t):
        nonlocal busy, plans
        if busy or not loop.due:
            return
        request = loop.request(t)
        actions, _, value = loop.plan(request)
        busy, plans = True, plans + 1
        at(t + latency(plans), ANSWER, (request, actions, value))

    def publish(t):
        sec, nanosec = divmod(round(t * 1e9), 10**9)
        at(t + transport, STATE, joint_state(robot, Time(sec=sec, nanosec=nanosec)))

    publish(0.0)
    at(period, STEP)
    at(tick_phase * period, TICK)
    while events:
        t, kind, _, payload = heapq.heappop(events)
        if kind == COMMAND:
            applied = payload
        elif kind == STEP:
            robot.step(applied)
            if robot.done:
                break
            publish(t)
            at(t + period, STEP)
        elif kind == STATE:
            loop.receive(payload, t)
            start_plan(t)
        elif kind == TICK:
            send(t, loop.tick(t))
            start_plan(t)
            at(t + period, TICK)
        else:  # ANSWER
            request, actions, value = payload
            busy = False
            # State n is published at step n - 1; with a lead the plan acts from the state `lead` steps later.
            in_time += t + transport <= (request.seq + request.lead) * period
            send(t, loop.answer(request, actions, value, t))
            start_plan(t)
    return VirtualRun(robot.episode_return, robot.episode_steps, in_time / max(plans, 1), dict(loop.counts),
                      log.lines)
