"""InputCheck with a task spec whose base state comes from odometry: messages read by their fields, no ROS needed."""

from types import SimpleNamespace as Msg

import numpy as np

from morec.simulator import SimulatedRobot
from morec.task_spec import load_task_spec, sim_dir
from morec_ros.input_check import InputCheck


class Logger:
    def __init__(self):
        self.warnings = []

    def warning(self, text, **_):
        self.warnings.append(text)


def header(ns):
    return Msg(stamp=Msg(sec=ns // 10**9, nanosec=ns % 10**9))


def xyz(v):
    return Msg(x=v[0], y=v[1], z=v[2])


def odometry(base, ns):
    x, y, z, w = base.orientation
    return Msg(header=header(ns), pose=Msg(pose=Msg(position=xyz(base.position), orientation=Msg(x=x, y=y, z=z, w=w))),
               twist=Msg(twist=Msg(linear=xyz(base.linear), angular=xyz(base.angular))))


def test_states_take_their_base_from_the_odometry_stamped_nearest():
    spec, plain = load_task_spec(sim_dir() / "robots" / "halfcheetah_odom.yaml"), load_task_spec("halfcheetah")
    legs = [spec.joints.index(j) for j in spec.state_joints]
    robot = SimulatedRobot(spec, spec.variant("nominal"), seed=0)
    period = round(spec.control_period * 1e9)
    states, odometries, expected = [], [], []
    for i, action in enumerate(np.random.default_rng(1).uniform(-1, 1, size=(4, spec.action_dim))):
        position, velocity, _ = robot.joint_state()
        states.append(Msg(header=header(i * period), name=list(spec.state_joints),
                          position=position[legs].tolist(), velocity=velocity[legs].tolist()))
        odometries.append(odometry(robot.base_state(), i * period))
        expected.append(plain.observation_from_joint_state(plain.joints, position, velocity))
        robot.step(action)

    logger = Logger()
    check = InputCheck(logger, spec)
    assert check.state(states[0]) is None and check.dropped["state_malformed"] == 1  # no odometry yet
    assert "from odometry on /odom" in logger.warnings[-1]
    for odom in odometries:  # all of them first: each state must pick its own by stamp
        check.odometry(odom)
    for state, obs in zip(states, expected):
        np.testing.assert_allclose(check.state(state)[0], obs, rtol=0, atol=1e-9)

    broken = odometry(robot.base_state(), 4 * period)
    broken.pose.pose.position.z = float("nan")
    check.odometry(broken)
    assert check.dropped["odometry_non_finite"] == 1
    check.restart()  # a restarted robot: the odometry of its old clock is forgotten too
    assert check.state(states[0]) is None and check.dropped["state_malformed"] == 2


def test_drops_since_report_counts_only_the_drops_after_the_previous_report():
    check = InputCheck(Logger(), load_task_spec("halfcheetah"))
    for _ in range(3):
        check.command(Msg(data=[0.0]))  # wrong length
    assert check.drops_since_report() == (3, 3)
    assert check.drops_since_report() == (0, 3)
    check.command(Msg(data=[float("nan")] * 6))
    assert check.drops_since_report() == (1, 4)
    assert dict(check.dropped) == {"command_wrong_length": 3, "command_non_finite": 1}
