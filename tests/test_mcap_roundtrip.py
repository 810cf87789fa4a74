"""Record, import, compare: the sim node in lockstep on InvertedPendulum driven by this test's commands while
morec_record records, then `morec dataset from-mcap` on the folder. Its transitions must be the simulator's own,
replayed here with SimulatedRobot and the same commands: observations, clipped actions, next observations,
the env's rewards, terminations and time limits."""

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from rosproc import COMMAND_TOPIC, MULTIPROCESS, Client, NodeProcess, domain_id, recording  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402

from morec.cli import main  # noqa: E402
from morec.dataset import Dataset  # noqa: E402
from morec.simulator import SimulatedRobot  # noqa: E402
from morec.task_spec import load_task_spec  # noqa: E402

pytestmark = MULTIPROCESS

SEED, VARIANT, EPISODE_LENGTH, STEPS = 3, "nominal", 8, 150


@pytest.fixture(autouse=True)
def localhost_only(monkeypatch):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def simulated(commands):
    """What the sim node does with `commands`: (obs, action, reward, next_obs, terminated, truncated) per step."""
    spec = load_task_spec("inverted_pendulum")
    robot = SimulatedRobot(spec, spec.variant(VARIANT), SEED, EPISODE_LENGTH)
    obs, steps = np.concatenate(robot.joint_state()[:2]), []
    for c in commands:
        if robot.done:  # the command after an episode's end starts the next one
            robot.reset()
            obs = np.concatenate(robot.joint_state()[:2])
            continue
        reward = robot.step(c)
        next_obs = np.concatenate(robot.joint_state()[:2])
        terminated = robot.done and reward == 0.0  # InvertedPendulum-v5 pays 1 a step while upright, 0 on a fall
        steps.append((obs, np.clip(c, -3, 3), reward, next_obs, terminated, robot.done and not terminated))
        obs = next_obs
    return steps


def test_a_recorded_simulated_run_imports_as_the_transitions_the_simulator_made(tmp_path, processes):
    domain = domain_id(92)
    folder = tmp_path / "run"
    sim = NodeProcess("sim_node", {"task": "inverted_pendulum", "variant": VARIANT, "mode": "lockstep", "seed": SEED,
                                   "episode_length": EPISODE_LENGTH, "start_paused": True}, domain, tmp_path)
    recorder = NodeProcess("record_node", {"task": "inverted_pendulum", "output": str(folder)}, domain, tmp_path)
    processes += [sim, recorder]
    client = Client(domain)
    client.watched += [sim, recorder]
    states = client.subscribe(JointState, "/joint_states",
                              QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    publisher = client.node.create_publisher(Float64MultiArray, COMMAND_TOPIC, 10)
    rng = np.random.default_rng(0)
    commands = rng.normal(0.0, 2.0, size=(STEPS, 1))  # some beyond the actuator limits of +-3
    try:
        # The sim stays silent until the recorder has matched both publishers and the sim ours. The recorder's
        # own report comes before its state subscription is seen on the graph: a fresh-clone run once lost the
        # first 109 states that way, so wait for both state subscribers (ours and the recorder's) too.
        assert client.spin_until(lambda: publisher.get_subscription_count() >= 2
                                 and client.node.count_subscribers("/joint_states") >= 2
                                 and recording(recorder, "/joint_states", COMMAND_TOPIC), 30.0), recorder.output()
        pause = client.node.create_client(SetBool, "/morec_sim/pause")
        assert pause.wait_for_service(timeout_sec=20.0)
        future = pause.call_async(SetBool.Request(data=False))
        assert client.spin_until(lambda: future.done() and states, 10.0)
        for c in commands:
            count = len(states)
            publisher.publish(Float64MultiArray(data=c.tolist()))
            assert client.spin_until(lambda: len(states) > count, 10.0), "the sim did not answer a command"
    finally:
        client.close()
    assert recorder.stop() == 0, recorder.output()

    out = tmp_path / "run.npz"
    assert main(["dataset", "from-mcap", str(folder), "--out", str(out)]) == 0  # the task: from the recording
    data = Dataset.load(out)
    obs, actions, rewards, next_obs, terminated, truncated = map(np.array, zip(*simulated(commands)))
    assert len(data) == len(obs) and terminated.sum() >= 10 and truncated.sum() >= 2  # falls and time limits
    np.testing.assert_allclose(data.observations, obs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(data.actions, actions, rtol=1e-6)
    np.testing.assert_allclose(data.next_observations, next_obs, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(data.rewards, rewards)  # the task spec's reward is the env's
    np.testing.assert_array_equal(data.terminals, terminated)
    truncated[-1] |= not terminated[-1]  # the recording ends in the middle of an episode
    np.testing.assert_array_equal(data.timeouts, truncated)
    report = data.metadata["import"]
    assert report["resets"] == STEPS - len(obs) and not report["gaps"]  # each command after an episode's end
    assert report["commands_clipped"] == np.sum(np.abs(commands) > 3) > 0
