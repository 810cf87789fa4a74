"""Closed loop over DDS: the sim node in lockstep and the MPC controller on the shipped InvertedPendulum bundle,
in a process each or both in one (morec_stack)."""

import sys

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from rosproc import BUNDLE, COMMAND_TOPIC, MULTIPROCESS, Client, NodeProcess, fresh_domain, ros_args  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64, Float64MultiArray  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402

from morec.simulator import SimulatedRobot  # noqa: E402
from morec.task_spec import load_task_spec  # noqa: E402

pytestmark = MULTIPROCESS

EPISODE = 150  # steps before the sim truncates the episode
# Planning settings light enough for two busy cores; stale_periods is large because in lockstep a
# watchdog zero command would be a step the other run does not take.
CONTROLLER = {"task": "inverted_pendulum", "bundle": str(BUNDLE), "lockstep": True, "planner": "mppi",
              "samples": 100, "horizon": 10, "seed": 3, "threads": 1, "device": "cpu", "stale_periods": 250.0}
SIM = {"task": "inverted_pendulum", "mode": "lockstep", "seed": 7, "start_paused": True, "episode_length": EPISODE}


@pytest.fixture(autouse=True)
def localhost_only(monkeypatch):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def random_return(episodes=20, seed=0, episode_length=EPISODE):
    """Mean return of uniformly random commands on the same robot."""
    spec = load_task_spec("inverted_pendulum")
    robot, rng = SimulatedRobot(spec, spec.variant("nominal"), seed, episode_length), np.random.default_rng(seed)
    returns = []
    for _ in range(episodes):
        while not robot.done:
            robot.step(rng.uniform(spec.action_low, spec.action_high))
        returns.append(robot.episode_return)
        robot.reset()
    return float(np.mean(returns))


def closed_loop(tmp_path, domain, one_process=False):
    """One episode: (its return, the states [T + 1, 4] of the episode, the T commands that drove it).
    With `one_process` the sim and the controller run in one morec_stack process."""
    client = Client(domain)
    latched = QoSProfile(depth=1000, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    states = client.subscribe(JointState, "/joint_states", latched)
    commands = client.subscribe(Float64MultiArray, COMMAND_TOPIC, 1000)
    returns = client.subscribe(Float64, "/morec/episode_return")
    plans = client.subscribe(Float64MultiArray, "/morec/plan", 1000)
    # The sim starts paused and runs only once every publisher and subscriber is matched: a lockstep
    # episode runs as fast as the planner, so a late discovery would lose the first messages.
    if one_process:
        command = [sys.executable, "-m", "morec_ros.stack", "morec_controller", *ros_args(CONTROLLER), "--",
                   "morec_sim", *ros_args(SIM), "--"]
        controller = sim = NodeProcess("stack", {}, domain, tmp_path, command=command)
    else:
        controller = NodeProcess("controller_node", CONTROLLER, domain, tmp_path)
        sim = NodeProcess("sim_node", SIM, domain, tmp_path)
    try:
        client.watched = [sim, controller]
        node = client.node
        assert client.spin_until(lambda: node.count_publishers(COMMAND_TOPIC) >= 1
                                 and node.count_subscribers(COMMAND_TOPIC) >= 2
                                 and node.count_publishers("/joint_states") >= 1
                                 and node.count_subscribers("/joint_states") >= 2, 30.0), controller.output()
        client.spin_until(lambda: False, 1.0)  # the endpoints match a moment after they are announced
        resume = node.create_client(SetBool, "/morec_sim/pause")
        assert resume.wait_for_service(timeout_sec=10.0), sim.output()
        future = resume.call_async(SetBool.Request(data=False))
        assert client.spin_until(future.done, 10.0), sim.output()
        assert client.spin_until(lambda: returns, 60.0), f"no episode end:\n{controller.output()}\n{sim.output()}"
        assert controller.stop() == 0, controller.output()
        client.watched = [] if one_process else [sim]  # in one process, the sim stopped with the controller
        client.spin_until(lambda: False, 0.5)  # the last command's state
        assert sim.stop() == 0, sim.output()
    finally:
        for p in (sim, controller):
            if p is not None:
                p.stop()
        client.close()
    # Lockstep answers every command with one state, so the states count the commands sent; the
    # client may have discovered the controller's publisher after its first few. In one process the sim
    # stops with the controller, so the last command may go unanswered.
    if one_process and len(commands) == len(states):
        commands = commands[:-1]
    missed = len(states) - 1 - len(commands)
    assert 0 <= missed <= 3, f"{len(states)} states but {len(commands)} commands"
    commands = [None] * missed + [np.array(m.data) for m in commands]
    # The episode ends at the first state whose stamp repeats (the reset keeps the time).
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in states]
    steps = next((i for i in range(1, len(stamps)) if stamps[i] == stamps[i - 1]), len(stamps)) - 1
    obs = np.array([list(m.position) + list(m.velocity) for m in states[: steps + 1]])
    assert plans and [(d.label, d.size) for d in plans[-1].layout.dim] == [("horizon", 10), ("state", 4)]
    return returns[0].data, obs, commands[:steps]


def test_lockstep_closed_loop_balances_and_is_deterministic(tmp_path):
    first = closed_loop(tmp_path, fresh_domain())
    second = closed_loop(tmp_path, fresh_domain())
    baseline = random_return()
    print(f"closed-loop return {first[0]:.0f} and {second[0]:.0f} (episode of {EPISODE}); random {baseline:.1f}")
    assert len(first[2]) >= 50, "too few control steps"
    assert first[0] >= 10 * baseline
    # Same seeds, same commands, same trajectory.
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])
    for a, b in zip(first[2], second[2]):
        if a is not None and b is not None:
            np.testing.assert_array_equal(a, b)
    low, high = load_task_spec("inverted_pendulum").action_low, load_task_spec("inverted_pendulum").action_high
    sent = np.array([c for c in first[2] if c is not None])
    assert sent.shape[1] == 1 and (sent >= low).all() and (sent <= high).all()


def test_one_process_runs_the_same_episode(tmp_path):
    """The sim and the controller in one process, each on an executor thread of its own: each node reads its own
    parameters, and the episode is the one the separate processes run with the same seeds."""
    together = closed_loop(tmp_path, fresh_domain(), one_process=True)
    apart = closed_loop(tmp_path, fresh_domain())
    print(f"closed-loop return {together[0]:.0f} in one process, {apart[0]:.0f} in two")
    assert len(together[2]) >= 50 and together[0] >= 10 * random_return()
    assert together[0] == apart[0]
    np.testing.assert_array_equal(together[1], apart[1])
