"""The controller's scheduling and watchdog (morec_ros.control_loop) on a fake clock, with a fake planner: no ROS."""

from types import SimpleNamespace

import numpy as np
import pytest

from morec.task_spec import load_task_spec
from morec_ros.control_loop import ControlLoop, LoopConfig, shown

TASK = load_task_spec("inverted_pendulum")
P = TASK.control_period
HORIZON = 4


def joint_state(stamp, position=(0.0, 0.05), velocity=(0.0, 0.0), names=("slider", "hinge")):
    """A JointState as the loop reads it (by its fields), stamped `stamp` seconds."""
    sec, nanosec = divmod(round(stamp * 1e9), 10**9)
    return SimpleNamespace(name=list(names), position=list(position), velocity=list(velocity),
                           header=SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nanosec)))


def numbered(plan, horizon=HORIZON):
    """Plan k's actions: 0.1 k + 0.01 i at step i, so a command names the plan and step it came from."""
    return 0.1 * plan + 0.01 * np.arange(horizon)[:, None]


def source(command):
    """(plan, step) of a command made from `numbered` actions."""
    return divmod(round(command[0] * 100), 10)


class Log:
    def __init__(self):
        self.lines = []

    def error(self, msg, **_):
        self.lines.append(("error", msg))

    def info(self, msg, **_):
        self.lines.append(("info", msg))

    def warning(self, msg, **_):
        self.lines.append(("warning", msg))


class Rig:
    """A ControlLoop whose planner answers with `numbered` plans (or `actions`); its predictor adds 1 to the state."""

    def __init__(self, actions=None, **cfg):
        self.asked, self.predicted, self.log = [], [], Log()  # (obs, elapsed) per plan; committed per prediction
        self.actions = actions
        self.loop = ControlLoop(TASK, LoopConfig(**cfg), self._act, self._predict, self.log, now=0.0)

    def _act(self, obs, elapsed):
        self.asked.append((obs, elapsed))
        actions = numbered(len(self.asked)) if self.actions is None else self.actions
        return actions, None, float(len(self.asked))

    def _predict(self, obs, committed):
        self.predicted.append(committed)
        return obs + 1.0

    def state(self, now, **msg):
        return self.loop.receive(joint_state(msg.pop("stamp", now), **msg), now)

    def plan(self, asked, done):
        """The planner thread: take the latest state at `asked`, finish its plan at `done`; the command it sends."""
        request = self.loop.request(asked)
        actions, _, value = self.loop.plan(request)
        return self.loop.answer(request, actions, value, done)


def test_nothing_is_commanded_before_the_first_state():
    rig = Rig()
    assert rig.loop.tick(0.5) is None and not rig.loop.due
    assert rig.loop.status(1.0)[:2] == ("warn", "waiting for /joint_states")


def test_lockstep_answers_every_state_exactly_once_with_its_own_plan():
    rig = Rig(lockstep=True)
    commands = []
    for k in range(6):
        t = 2 * k * P  # a plan takes 1.5 periods: the robot waits for it
        assert rig.state(t)
        assert rig.loop.due and rig.loop.tick(t + 0.5 * P) is None  # the timer never answers in lockstep
        commands.append(rig.plan(t, t + 1.5 * P))
        assert not rig.loop.due and rig.loop.tick(t + 1.9 * P) is None
    assert [source(c) for c in commands] == [(k, 0) for k in range(1, 7)]
    assert [elapsed for _, elapsed in rig.asked] == [0] + [2] * 5  # two robot periods between the states' stamps
    assert rig.predicted == []  # the robot waits while we plan: nothing to compensate
    assert rig.loop.counts["commands"] == rig.loop.counts["plans"] == 6


def test_the_timer_fills_in_only_for_periods_no_plan_answered_at_the_nominal_rate():
    rig = Rig(latency_compensation=False)
    answered = {0, 1, 4}
    per_period = []
    for k in range(10):
        rig.state(k * P)
        sent = [rig.plan(k * P + 0.1 * P, k * P + 0.3 * P)] if k in answered else []
        sent.append(rig.loop.tick(k * P + 0.9 * P))
        per_period.append([source(c) for c in sent if c is not None])
    assert all(len(sent) == 1 for sent in per_period), per_period  # one command per period
    # A plan's own command is its first action; the timer continues the latest plan, holding its last action.
    assert [sent[0] for sent in per_period] == [(1, 0), (2, 0), (2, 1), (2, 2), (3, 0), (3, 1), (3, 2), (3, 3),
                                                (3, 3), (3, 3)]
    assert not rig.loop.stale


def test_a_plan_answering_after_the_tick_does_not_silence_the_next_periods_fill_in():
    rig = Rig(latency_compensation=False)
    rig.state(0.0)
    assert rig.loop.tick(0.5 * P) is None  # no plan yet
    assert source(rig.plan(0.01 * P, 0.6 * P)) == (1, 0)  # plan 1 answers after the tick, in its period
    rig.state(P)
    request = rig.loop.request(P + 0.01 * P)  # plan 2 takes longer than the period
    assert source(rig.loop.tick(1.5 * P)) == (1, 1)  # the robot's next step gets plan 1's next action
    actions, _, value = rig.loop.plan(request)
    assert source(rig.loop.answer(request, actions, value, 2.2 * P)) == (2, 1)


def test_a_state_a_period_on_is_planned_for_at_once_even_if_the_last_plan_started_after_the_tick():
    """A plan that started late in its period (the planner was busy) must not make the next state wait for
    the timer: every plan after it would start the timer's phase late, and stay late."""
    rig = Rig(latency_compensation=False)
    rig.state(0.0)
    rig.loop.tick(0.5 * P)
    rig.plan(0.6 * P, 0.9 * P)  # the state waited for a busy planner until after the tick
    rig.state(P)
    assert rig.loop.due


def test_a_plan_for_a_state_already_replaced_answers_the_latest_one_only():
    rig = Rig()
    rig.state(0.0, position=(0.0, 0.01))
    rig.state(0.5 * P, position=(0.0, 0.02))  # the planner was busy: the first state is never planned for
    rig.plan(0.6 * P, 0.8 * P)
    assert len(rig.asked) == 1 and rig.asked[0][0][1] == 0.02 and not rig.loop.due


def test_latency_compensation_plans_from_the_predicted_state_with_the_right_lead():
    rig = Rig()
    rig.state(0.0, position=(0.0, 0.1))
    assert rig.loop.tick(0.9 * P) is None  # no plan has started yet
    # No latency measured yet: lead 0, so the first plan starts at its state and its first action is past.
    assert source(rig.plan(0.0, 1.5 * P)) == (1, 1)
    assert rig.loop.tick(1.9 * P) is None  # this period is answered

    rig.state(2 * P, position=(0.0, 0.2))
    request = rig.loop.request(2 * P)
    assert request.lead == 1 and request.start == pytest.approx(3 * P)  # 1.5 periods a plan: one robot step
    np.testing.assert_allclose(request.committed, numbered(1)[2:3])  # what plan 1 commands until then
    actions, _, value = rig.loop.plan(request)
    assert len(rig.predicted) == 1 and rig.asked[-1][0][1] == pytest.approx(0.2 + 1.0)  # the predicted state
    assert rig.asked[-1][1] == 3  # plan 2 starts three steps after plan 1
    assert source(rig.loop.tick(2.9 * P)) == (1, 2)  # the committed action, filled in by the timer
    assert source(rig.loop.answer(request, actions, value, 3.5 * P)) == (2, 0)  # starts with its first action
    assert rig.loop.tick(3.9 * P) is None

    rig.state(4 * P)
    assert rig.plan(4 * P, 4.5 * P) is None  # ready before its start: the previous plan keeps commanding
    assert source(rig.loop.tick(4.9 * P)) == (2, 1) and source(rig.loop.tick(5.9 * P)) == (3, 0)
    assert rig.asked[-1][1] == 2 and rig.loop.status(6 * P)[2]["lead_periods"] == 1


def test_without_compensation_a_late_plan_starts_at_its_state_and_skips_what_is_past():
    rig = Rig(latency_compensation=False)
    rig.state(0.0)
    rig.plan(0.0, 1.5 * P)
    rig.state(2 * P)
    assert source(rig.plan(2 * P, 3.5 * P)) == (2, 1)
    assert rig.predicted == [] and rig.loop.status(4 * P)[2]["lead_periods"] == 0


@pytest.mark.parametrize("stale_action", ["zero", "hold"])
def test_the_watchdog_fires_after_stale_periods_and_recovers_by_itself(stale_action):
    rig = Rig(stale_periods=5.0, stale_action=stale_action)
    rig.state(0.0, stamp=100.0)
    rig.plan(0.0, 0.3 * P)
    ticks = {k: rig.loop.tick((k + 0.9) * P) for k in range(12)}
    assert [source(ticks[k]) for k in range(1, 5)] == [(1, 1), (1, 2), (1, 3), (1, 3)]  # fresh enough
    held = [0.0] if stale_action == "zero" else [0.13]  # zeros, or plan 1's last command again
    assert all(list(ticks[k]) == pytest.approx(held) for k in range(5, 12))  # 5.9 periods without a state
    level, message, values = rig.loop.status(12 * P)
    assert (level, message) == ("error", f"no new /joint_states for 0.48 s: commanding {stale_action}")
    assert values["stale_events"] == 1 and rig.log.lines == [
        ("error", f"no new /joint_states for 0.24 s (limit 0.20 s): commanding {stale_action} "
                  "until a fresh state is planned for")]

    # The robot restarts, its clock from zero: accepted, but the old plan is used up: still stale until planned for.
    assert rig.state(12 * P, stamp=0.0)
    assert list(rig.loop.tick(12.9 * P)) == pytest.approx(held)
    assert rig.plan(13 * P, 13.3 * P) is None  # the timer's turn, which ends the stale period
    assert rig.asked[-1][1] == 0  # a restarted robot: the previous plan does not carry over
    assert source(rig.loop.tick(13.9 * P)) == (2, 1)  # its state arrived at 12 periods
    assert rig.loop.status(14 * P)[:2] == ("ok", "ok")
    assert rig.log.lines[-1] == ("info", "fresh state: resuming control")


def test_a_stuck_planner_triggers_the_watchdog():
    rig = Rig(stale_periods=5.0)
    rig.state(0.0)
    rig.plan(0.0, 0.3 * P)
    assert rig.loop.tick(0.9 * P) is None  # answered
    for k in range(1, 9):  # fresh states, but no plan for them
        rig.state(k * P)
        assert not rig.loop.stale and rig.loop.tick((k + 0.9) * P) is not None
    rig.state(9 * P)
    # The plan started 9.9 periods ago and had 4 actions: used up more than 5 periods ago.
    assert list(rig.loop.tick(9.9 * P)) == [0.0]
    assert rig.loop.status(10 * P)[1].endswith("the planner is not keeping up: commanding zero")
    rig.state(10 * P)
    rig.plan(10 * P, 10.3 * P)
    assert source(rig.loop.tick(10.9 * P)) == (2, 0) and not rig.loop.stale


def test_lockstep_watchdog_counts_only_waiting_for_the_robot():
    rig = Rig(lockstep=True, stale_periods=5.0)
    rig.state(0.0)
    rig.plan(0.0, 0.3 * P)
    assert rig.loop.tick(5.2 * P) is None  # waited 4.9 periods for the next state
    assert list(rig.loop.tick(5.4 * P)) == [0.0] and rig.loop.stale
    assert "since the last command" in rig.loop.status(6 * P)[1]
    rig.state(6 * P)
    assert rig.loop.tick(6.9 * P) is None and not rig.loop.stale
    assert rig.loop.tick(30 * P) is None and not rig.loop.stale  # a slow plan: the robot waits for us


def test_invalid_states_are_dropped_counted_and_never_acted_on():
    rig = Rig(lockstep=True)
    assert rig.state(1.0)
    rig.plan(1.0, 1.01)
    invalid = [dict(position=[0.0], velocity=[0.0], names=["slider"]),  # a joint missing
               dict(position=[0.0, float("nan")]),
               dict(stamp=0.5),  # the stamp going backwards
               dict(position=[0.0, 0.05, 0.0])]  # positions do not match names
    for msg in invalid:
        assert not rig.state(1.04, **msg)
        assert not rig.loop.due and rig.loop.tick(1.05) is None
    assert rig.state(1.04, position=[-0.02, 0.0], names=["hinge", "slider"])  # any order, by name
    rig.plan(1.04, 1.05)
    np.testing.assert_array_equal(rig.asked[-1][0], [0.0, -0.02, 0.0, 0.0])
    assert len(rig.asked) == 2 and rig.loop.counts["commands"] == 2
    level, message, values = rig.loop.status(1.1)
    assert (level, message) == ("warn", "dropped 4 invalid messages")
    assert values["states_dropped"] == 4 and values["state_malformed"] == 2
    assert values["state_non_finite"] == 1 and values["state_stamp_backwards"] == 1
    assert rig.loop.status(1.2)[0] == "ok"  # only fresh drops warn


def test_commands_are_clipped_and_non_finite_actions_become_zeros():
    rig = Rig(actions=np.array([[6.0], [0.0]]))
    rig.state(0.0)
    assert list(rig.plan(0.0, 0.1 * P)) == [3.0]
    rig.actions = np.array([[np.nan], [1.0]])
    rig.state(P)
    assert list(rig.plan(P, 1.1 * P)) == [0.0]
    assert rig.loop.counts["non_finite_actions"] == 1


def test_status_reports_latency_percentiles_deadline_misses_plans_and_the_rate():
    rig = Rig(lockstep=True)
    latencies = [0.5 * P, 0.7 * P, 1.5 * P, 0.6 * P]
    t = 0.0
    for latency in latencies:
        rig.state(t)
        rig.plan(t, t + latency)
        t += 2 * P
    _, _, values = rig.loop.status(0.5)
    assert values["plans"] == 4 and values["deadline_misses"] == 1 and values["commands"] == 4
    p50, p99 = np.percentile(np.array(latencies) * 1e3, [50, 99])
    assert (values["latency_p50_ms"], values["latency_p99_ms"]) == pytest.approx((p50, p99))
    assert values["control_rate_hz"] == pytest.approx(4 / 0.5) and values["plan_value"] == 4.0
    assert values["lockstep"] is True and values["lead_periods"] == 0
    # /diagnostics shows the floats rounded, counts and flags as they are.
    readable = shown(values)
    assert (readable["latency_p50_ms"], readable["control_rate_hz"], readable["plan_value"]) == (
        f"{p50:.2f}", "8.00", "4.000")
    assert readable["plans"] == 4 and readable["lockstep"] is True
    assert rig.loop.status(1.5)[2]["control_rate_hz"] == 0.0  # since the previous report


def test_config_rejects_unknown_stale_actions_and_non_positive_limits():
    with pytest.raises(ValueError, match="stale_action"):
        LoopConfig(stale_action="brake")
    with pytest.raises(ValueError, match="positive"):
        LoopConfig(stale_periods=0.0)
