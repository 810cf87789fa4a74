"""The controller against the simulated robot on a virtual clock (morec_ros.virtual_time), with the shipped
pendulum bundle and the task's own controller settings."""

import dataclasses

import numpy as np
import pytest

pytest.importorskip("rclpy")
from morec.runner import config_dir, task_params  # noqa: E402
from morec.simulator import SimulatedRobot  # noqa: E402
from morec.task_spec import load_task_spec  # noqa: E402
from morec_ros.controller import Controller  # noqa: E402
from morec_ros.node_params import PLANNER_CONFIGS, ControllerParams  # noqa: E402
from morec_ros.parameters import params_from_files  # noqa: E402
from morec_ros.virtual_time import lognormal_latency, run_episode  # noqa: E402

TASK = load_task_spec("inverted_pendulum")
FILES = [config_dir().parent / "params" / "stack.yaml", task_params("inverted_pendulum")]
STEPS = 60


def controller():
    p = params_from_files(ControllerParams, "morec_controller", FILES)
    return Controller(TASK, p, params_from_files(PLANNER_CONFIGS[p.planner], "morec_controller", FILES)), p.loop


def test_params_from_files_reads_the_task_settings_over_the_stack_defaults():
    p = params_from_files(ControllerParams, "morec_controller", FILES, overrides={"horizon": 3})
    assert p.task == "inverted_pendulum" and p.command_topic == "/morec/command_request" and not p.loop.lockstep
    mppi = params_from_files(PLANNER_CONFIGS["mppi"], "morec_controller", FILES, overrides={"horizon": 3})
    assert mppi.samples == 100 and mppi.horizon == 3


def test_a_plan_ready_at_once_drives_every_step_as_lockstep_would():
    """Near-zero latency: each state's own plan acts on it, so the episode is lockstep's, step for step."""
    ctrl, loop = controller()
    run = run_episode(TASK, ctrl.act, ctrl.predict, loop, latency=lambda _: 1e-4, seed=3, steps=STEPS,
                      transport=0.0)

    ctrl, _ = controller()  # the same planner from the same seed, in lockstep by hand
    robot = SimulatedRobot(TASK, TASK.variant("nominal"), 3, episode_length=STEPS)
    for k in range(STEPS):
        position, velocity, _ = robot.joint_state()
        obs = TASK.observation_from_joint_state(list(TASK.state_joints), position, velocity, None)
        robot.step(ctrl.act(obs, 0 if k == 0 else 1)[0][0])
        if robot.done:
            break
    assert run.in_time == 1.0 and run.counts["deadline_misses"] == 0
    assert run.steps == robot.episode_steps and run.episode_return == pytest.approx(robot.episode_return)


def test_plans_slower_than_the_period_are_in_time_only_when_the_loop_plans_ahead():
    """1.5 periods per plan: every plan misses the period; planning one period ahead (latency compensation)
    gets each plan's first action to the robot before the step it was planned for, planning from the state
    as it was never does."""
    ctrl, loop = controller()
    latency = lambda _: 1.5 * TASK.control_period  # noqa: E731
    ahead = run_episode(TASK, ctrl.act, ctrl.predict, loop, latency, seed=3, steps=STEPS)
    ctrl, _ = controller()
    late = run_episode(TASK, ctrl.act, ctrl.predict, dataclasses.replace(loop, latency_compensation=False), latency,
                       seed=3, steps=STEPS)
    for run in (ahead, late):
        assert run.counts["deadline_misses"] == run.counts["plans"] > 0
        assert run.counts["stale_events"] == 0  # the schedule's actions cover every period
    # Only the first plans, before a latency has been measured, are late when planning ahead.
    assert ahead.counts["plans"] - round(ahead.in_time * ahead.counts["plans"]) <= 5
    assert late.in_time == 0.0


def test_a_minimum_lead_plans_ahead_even_when_plans_are_fast():
    ctrl, loop = controller()
    run = run_episode(TASK, ctrl.act, ctrl.predict, dataclasses.replace(loop, min_lead=1), lambda _: 1e-3,
                      seed=3, steps=STEPS)
    assert run.in_time == 1.0 and run.counts["deadline_misses"] == 0


def test_lognormal_latency_has_the_asked_median_and_99th_percentile():
    draw = lognormal_latency(0.03, 0.06, seed=0)
    samples = np.array([draw(i) for i in range(20000)])
    assert np.percentile(samples, 50) == pytest.approx(0.03, rel=0.03)
    assert np.percentile(samples, 99) == pytest.approx(0.06, rel=0.05)

