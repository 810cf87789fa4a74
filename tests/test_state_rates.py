"""The control loop and the monitors' pairing with a broadcaster at 25, 250 and 1000 Hz, on a fake clock: no ROS.

The controller (ControlLoop, real time, a planner that takes 0.3 periods) plans at its own period from
the latest state and sends each command; Transitions pairs the same states and commands as the
dynamics and filter nodes do.
"""

import heapq

import numpy as np
import pytest

pytest.importorskip("rclpy")
from test_control_loop import TASK, Log, joint_state  # noqa: E402

from morec_ros.common import Transitions  # noqa: E402
from morec_ros.control_loop import ControlLoop, LoopConfig  # noqa: E402

P = TASK.control_period
SECONDS = 15.0
DELIVERY = 2e-4  # a message's transport delay, seconds


def run(rate_hz):
    """The loop and the pairing over SECONDS; (commands per tick interval, transitions, loop, pairing)."""
    plans = []

    def act(obs, elapsed):
        plans.append(obs)
        return np.full((4, TASK.action_dim), 0.1 * len(plans)), None, 0.0

    loop = ControlLoop(TASK, LoopConfig(), act, lambda obs, committed: obs, Log(), now=0.0)
    pairing = Transitions(P)
    transitions, per_tick, busy = [], [0], False
    # (time, order, kind, payload): states stamped k / rate, ticks at 0.37 periods past the robot's steps
    events = [(k / rate_hz, 0, "state", k / rate_hz) for k in range(int(SECONDS * rate_hz))]
    events += [((k + 0.37) * P, 1, "tick", None) for k in range(int(SECONDS / P))]
    heapq.heapify(events)

    def send(command, now):
        if command is not None:
            per_tick[-1] += 1
            transitions.extend(pairing.command(command, round(now * 1e9)))

    def ask(now):
        nonlocal busy
        if loop.due and not busy:
            busy = True
            request = loop.request(now)
            heapq.heappush(events, (now + 0.3 * P, 2, "answer", (request, *loop.plan(request))))

    while events:
        now, _, kind, payload = heapq.heappop(events)
        if kind == "state":  # the robot's clock is the slider position: s' - s is the paired interval
            msg = joint_state(payload, position=(payload, 0.0))
            transitions.extend(pairing.state(np.array([payload]), round(payload * 1e9), round(payload * 1e9)))
            loop.receive(msg, now + DELIVERY)
        elif kind == "tick":
            send(loop.tick(now), now)
            per_tick.append(0)
        else:
            request, actions, _, value = payload
            busy = False
            send(loop.answer(request, actions, value, now), now)
        ask(now)
    return per_tick, transitions, loop, pairing


@pytest.mark.parametrize("rate_hz", [25, 250, 1000])
def test_one_plan_one_command_and_one_transition_per_control_period_at_any_state_rate(rate_hz):
    per_tick, transitions, loop, pairing = run(rate_hz)
    periods = int(SECONDS / P)
    assert not loop.stale and loop.counts["stale_events"] == 0
    assert set(per_tick[2:-1]) == {1}, per_tick  # once per period after the first plan
    assert periods - 2 <= loop.counts["plans"] <= periods + 1
    paired = pairing.completed / periods
    print(f"{rate_hz} Hz: {pairing.completed} transitions, {pairing.gaps} gaps in {periods} periods ({paired:.1%})")
    assert paired >= 0.95 and pairing.gaps == 0
    # The nearest state to one period later: off by at most half the state interval.
    spans = np.array([s_next[0] - s[0] for s, _, _, s_next in transitions])
    assert np.all(np.abs(spans - P) <= 0.5 / rate_hz + 1e-9), spans
