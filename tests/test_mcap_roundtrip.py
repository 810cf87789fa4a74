"""Record, import, compare: the sim node in lockstep on InvertedPendulum driven by this test's commands while
morec_record records, then `morec dataset from-mcap` on the folder. Its transitions must be the simulator's own,
replayed here with SimulatedRobot and the same commands: observations, clipped actions, next observations,
the env's rewards, terminations and time limits."""

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from rosproc import COMMAND_TOPIC, MULTIPROCESS, Client, NodeProcess, fresh_domain, recording, status_of  # noqa: E402
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
    domain = fresh_domain()
    folder = tmp_path / "run"
    sim = NodeProcess("sim_node", {"task": "inverted_pendulum", "variant": VARIANT, "mode": "lockstep", "seed": SEED,
                                   "episode_length": EPISODE_LENGTH, "start_paused": True, "diagnostics_period": 0.1},
                      domain, tmp_path)
    recorder = NodeProcess("record_node", {"task": "inverted_pendulum", "output": str(folder),
                                           "diagnostics_period": 0.1}, domain, tmp_path)
    processes += [sim, recorder]
    client = Client(domain)
    client.watched += [sim, recorder]
    diagnostics = client.diagnostics()
    states = client.subscribe(JointState, "/joint_states",
                              QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    # History for every command: a recorder that falls behind for a moment gets the ones it missed resent
    # (reliable delivery repairs only what the writer still holds).
    publisher = client.node.create_publisher(Float64MultiArray, COMMAND_TOPIC, STEPS)
    rng = np.random.default_rng(0)
    commands = rng.normal(0.0, 2.0, size=(STEPS, 1))  # some beyond the actuator limits of +-3
    try:
        # The sim stays silent until each side of both streams has matched the other: our command publisher
        # the sim and the recorder, the recorder both publishers, and the sim's state publisher both
        # subscribers (its own count, in its diagnostics: a run once lost the first 109 states to a recorder
        # the sim had not matched yet).
        def sim_state_subscribers():
            status = status_of(diagnostics, "morec_sim: simulator")
            return int(status[2]["state_subscribers"]) if status else 0

        assert client.spin_until(lambda: publisher.get_subscription_count() >= 2 and sim_state_subscribers() >= 2
                                 and recording(recorder, "/joint_states", COMMAND_TOPIC), 30.0), recorder.output()
        pause = client.node.create_client(SetBool, "/morec_sim/pause")
        assert pause.wait_for_service(timeout_sec=20.0)
        future = pause.call_async(SetBool.Request(data=False))
        assert client.spin_until(lambda: future.done() and states, 10.0)
        for c in commands:
            count = len(states)
            publisher.publish(Float64MultiArray(data=c.tolist()))
            assert client.spin_until(lambda: len(states) > count, 10.0), "the sim did not answer a command"

        def recorded():  # the recorder's own count: stopping it earlier would cut the recording short
            status = status_of(diagnostics, "morec_record: recorder")
            return status[2] if status else {}

        assert client.spin_until(lambda: recorded().get("written /joint_states") == str(STEPS + 1)
                                 and recorded().get(f"written {COMMAND_TOPIC}") == str(STEPS), 10.0), recorded()
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
