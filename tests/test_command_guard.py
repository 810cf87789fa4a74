"""The command guard (morec_ros.command_guard) on a fake clock: no ROS."""

from types import SimpleNamespace

import numpy as np
import pytest
from test_control_loop import Log

from morec.task_spec import load_task_spec
from morec_ros.command_guard import CommandGuard, GuardConfig

TASK = load_task_spec("halfcheetah")  # six actuators within [-1, 1]
P = TASK.control_period


def msg(*values):
    return SimpleNamespace(data=list(values))


def guard(**cfg):
    log = Log()
    return CommandGuard(TASK, GuardConfig(**cfg), log, now=0.0), log


def test_valid_commands_are_forwarded_unchanged():
    g, _ = guard()
    for k, value in enumerate([0.5, -1.0, 1.0]):  # the limits themselves are valid
        command = g.receive(msg(*[value] * 6), now=k * P)
        np.testing.assert_array_equal(command, [value] * 6)
    assert g.counts["forwarded"] == 3 and sum(g._check.dropped.values()) == 0
    assert g.status(3 * P)[0] == "ok"


@pytest.mark.parametrize("values, kind", [
    ((0.1,) * 5, "command_wrong_length"),
    ((0.1,) * 7, "command_wrong_length"),
    ((0.1,) * 5 + (float("nan"),), "command_non_finite"),
    ((0.1,) * 5 + (float("inf"),), "command_non_finite"),
    ((0.1,) * 5 + (1.0001,), "command_out_of_limits"),  # rejected, not clipped to full effort
    ((-1.5,) + (0.1,) * 5, "command_out_of_limits"),
])
def test_invalid_commands_are_dropped_counted_and_reported(values, kind):
    g, log = guard()
    g.receive(msg(*[0.2] * 6), now=0.0)
    assert g.receive(msg(*values), now=P) is None
    assert g._check.dropped == {kind: 1}
    assert any(level == "warning" and kind in text for level, text in log.lines)
    level, message, values = g.status(P)
    assert (level, message, values[kind], values["forwarded"]) == ("warn", "dropped 1 invalid commands", 1, 1)
    assert g.status(2 * P)[0] == "ok"  # since the previous report


def test_zero_after_silent_periods_once_per_period_until_commands_return():
    g, log = guard(silent_periods=2.0)
    assert g.tick(10 * P) is None  # never commanded: nothing to take back
    assert g.status(10 * P)[:2] == ("warn", "waiting for the first valid command")
    g.receive(msg(*[0.7] * 6), now=10 * P)
    assert g.tick(11.9 * P) is None
    np.testing.assert_array_equal(g.tick(12.1 * P), np.zeros(6))
    assert g.silent and g.status(12.1 * P)[0] == "error"
    assert g.tick(12.5 * P) is None and g.tick(13.0 * P) is None  # then once per period
    assert g.tick(13.2 * P) is not None
    # Invalid commands are silence too: the robot keeps zeros.
    g.receive(msg(float("nan"), *[0.1] * 5), now=13.5 * P)
    assert g.silent and g.tick(14.3 * P) is not None
    np.testing.assert_array_equal(g.receive(msg(*[0.3] * 6), now=14.5 * P), [0.3] * 6)
    assert not g.silent and g.tick(15 * P) is None
    assert (g.counts["silent_events"], g.counts["zeros"]) == (1, 3)
    assert [level for level, _ in log.lines].count("error") == 1
    assert ("info", "valid commands again: forwarding them") in log.lines


def test_out_of_limit_commands_end_in_zeros():
    """A sender whose commands are all out of limits (wrong units, wrong task) gets the robot zeros,
    never full effort."""
    g, _ = guard()
    g.receive(msg(*[0.5] * 6), now=0.0)
    outputs = [g.receive(msg(*[40.0] * 6), now=k * P / 2) for k in range(1, 6)] + [g.tick(2.25 * P)]
    assert outputs[:-1] == [None] * 5
    np.testing.assert_array_equal(outputs[-1], np.zeros(6))


def test_rate_limit_passes_a_burst_of_one_period_and_the_average():
    g, _ = guard(max_commands_per_period=3.0)
    # A burst of 3 at once passes, the 4th does not; then one every P/3 passes.
    results = [g.receive(msg(*[0.1] * 6), now=1.0) is not None for _ in range(4)]
    assert results == [True, True, True, False]
    assert g._check.dropped == {"command_rate": 1}
    results = [g.receive(msg(*[0.1] * 6), now=1.0 + k * P / 3 + 1e-9) is not None for k in range(1, 10)]
    assert all(results)
    # Ten times too fast for one second: three per period get through, and a full bucket's burst.
    start = 2.0
    passed = sum(g.receive(msg(*[0.1] * 6), now=start + k * P / 30) is not None for k in range(round(30 / P)))
    assert 3 / P <= passed <= 3 / P + 3
    assert not g.silent and g.tick(start + 1.0) is None  # a flooding controller is not a silent one


def test_lockstep_forwards_every_valid_command_and_never_commands_on_its_own():
    g, _ = guard(lockstep=True)
    assert all(g.receive(msg(*[0.1] * 6), now=1.0) is not None for _ in range(10))  # no rate limit
    assert g.receive(msg(*[2.0] * 6), now=1.0) is None  # still checked
    assert g.tick(1.0 + 100 * P) is None and not g.silent  # a silent controller stops a lockstep sim


def test_zeros_as_the_guard_stops_once_it_has_commanded():
    g, _ = guard()
    assert g.stop() is None  # the robot never heard from it
    g.receive(msg(*[0.4] * 6), now=0.0)
    np.testing.assert_array_equal(g.stop(), np.zeros(6))
    g, _ = guard(lockstep=True)
    g.receive(msg(*[0.4] * 6), now=0.0)
    assert g.stop() is None


def test_config_is_checked():
    with pytest.raises(ValueError):
        GuardConfig(silent_periods=0)
    with pytest.raises(ValueError):
        GuardConfig(max_commands_per_period=0.5)
