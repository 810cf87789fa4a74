"""The real-time plan schedule and the planning lead (morec_ros.plan_schedule)."""

import numpy as np
import pytest

pytest.importorskip("rclpy")
from morec_ros.plan_schedule import PlanSchedule, lead_periods  # noqa: E402

PERIOD = 0.05


def plan(first, horizon=4):
    """Actions [H, 1] numbered from `first`, so an action names its plan and index."""
    return np.arange(first, first + horizon, dtype=float)[:, None]


def test_a_plan_commands_its_actions_one_period_each_and_holds_the_last():
    s = PlanSchedule(PERIOD)
    assert s.action_at(1.0) is None
    s.add(plan(10), start=1.0)
    assert s.action_at(0.99) is None
    assert [s.action_at(1.0 + PERIOD * k + 0.01)[0] for k in range(6)] == [10, 11, 12, 13, 13, 13]


def test_the_previous_plan_commands_until_the_next_one_starts():
    s = PlanSchedule(PERIOD)
    s.add(plan(10), start=1.0)
    s.add(plan(20), start=1.1)  # ready early: due two periods after the first
    assert s.action_at(1.06)[0] == 11 and s.action_at(1.1)[0] == 20
    assert s.latest_start == 1.1 and s.latest_horizon == 4


def test_committed_actions_are_those_commanded_until_the_new_plan_starts():
    s = PlanSchedule(PERIOD)
    s.add(plan(10), start=1.0)
    np.testing.assert_array_equal(s.committed(1.05, 2)[:, 0], [11, 12])
    assert s.committed(1.05, 0) is None  # no lead, nothing to predict
    assert s.committed(0.9, 3) is None  # before any plan: not known
    s.reset()
    assert s.committed(1.05, 2) is None and s.latest_start is None


def test_a_plan_replaces_those_that_would_start_after_it():
    s = PlanSchedule(PERIOD)
    s.add(plan(10), start=1.0)
    s.add(plan(20), start=1.2)
    s.add(plan(30), start=1.1)  # the planner's lead shrank: this plan supersedes the later one
    assert s.action_at(1.26)[0] == 33  # plan 30, three periods in


def test_the_lead_counts_the_robot_steps_a_median_plan_takes_within_the_horizon():
    assert lead_periods([], PERIOD, 10) == 0
    assert lead_periods([0.01, 0.045, 0.5], PERIOD, 10) == 0  # ready before the robot's next step
    assert lead_periods([0.06, 0.07, 0.08], PERIOD, 10) == 1
    assert lead_periods([2.0], PERIOD, 10) == 9


def test_the_lead_counts_the_time_a_state_waited_for_a_busy_planner():
    latencies = [0.03] * 5  # 0.6 of a 50 ms period
    assert lead_periods(latencies, 0.05, horizon=10) == 0
    assert lead_periods(latencies, 0.05, horizon=10, waited=0.025) == 1  # 55 ms from receipt to plan
    assert lead_periods(latencies, 0.05, horizon=3, waited=0.2) == 2  # never past the plan's last action
