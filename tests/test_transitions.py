"""Pairing states and commands into real transitions by send time (morec_ros.common.Transitions)."""

import numpy as np
import pytest

pytest.importorskip("rclpy")
from morec_ros.common import Transitions  # noqa: E402

PERIOD = 0.05
NS = 50_000_000  # one control period


def obs(k):
    return np.full(2, float(k))


def test_in_order_messages_make_one_transition_per_period():
    t = Transitions(PERIOD)
    done = t.state(obs(0), 0, sent=100)
    assert done == [] and np.array_equal(t.applies_to(sent=150), obs(0))
    assert t.command(np.array([0.5]), sent=150, attachment="p0") == []
    ((s, a, attached, s_next),) = t.state(obs(1), NS, sent=200)
    assert np.array_equal(s, obs(0)) and a[0] == 0.5 and attached == "p0" and np.array_equal(s_next, obs(1))
    assert t.completed == 1


def test_a_state_handled_before_the_command_sent_ahead_of_it_still_pairs_correctly():
    # A busy node takes state 1 (sent at 200) before command 0 (sent at 150, in state 0).
    t = Transitions(PERIOD)
    t.state(obs(0), 0, sent=100)
    assert t.state(obs(1), NS, sent=200) == []
    assert np.array_equal(t.applies_to(sent=150), obs(0))  # not the newer state 1
    ((s, a, _, s_next),) = t.command(np.array([0.5]), sent=150)
    assert np.array_equal(s, obs(0)) and np.array_equal(s_next, obs(1))
    # The command answering state 1 pairs with state 2.
    t.command(np.array([0.7]), sent=250)
    ((s, a, _, _),) = t.state(obs(2), 2 * NS, sent=300)
    assert np.array_equal(s, obs(1)) and a[0] == 0.7 and t.completed == 2


def test_the_latest_command_in_a_state_is_the_one_applied():
    t = Transitions(PERIOD)
    t.state(obs(0), 0, sent=100)
    t.command(np.array([0.1]), sent=120)
    t.command(np.array([0.9]), sent=140)
    ((_, a, _, _),) = t.state(obs(1), NS, sent=200)
    assert a[0] == 0.9


def test_resets_gaps_and_commands_before_any_state_make_no_transition():
    t = Transitions(PERIOD)
    assert t.applies_to(sent=50) is None and t.command(np.array([0.1]), sent=50) == []
    t.state(obs(0), 0, sent=100)
    t.command(np.array([0.1]), sent=120)
    assert t.state(obs(9), 0, sent=200) == []  # a reset repeats the stamp
    t.command(np.array([0.1]), sent=220)
    assert t.state(obs(1), 5 * NS, sent=300) == []  # lost messages in between
    assert (t.completed, t.gaps) == (0, 1)
