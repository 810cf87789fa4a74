"""The controller's `model: mujoco` over DDS: MPC through the task's simulator, with no bundle."""

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from rosproc import COMMAND_TOPIC, MULTIPROCESS, Client, NodeProcess, fresh_domain  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from morec.mujoco_model import MujocoDynamics  # noqa: E402
from morec.planners import make_planner  # noqa: E402
from morec.rollout import FilterConfig, FilteredDynamics  # noqa: E402
from morec.task_spec import load_task_spec  # noqa: E402

pytestmark = MULTIPROCESS

SETTINGS = {"samples": 32, "horizon": 8, "seed": 3}


@pytest.fixture(autouse=True)
def localhost_only(monkeypatch):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def expected_command(obs):
    """What the node must send: its warm-up plan on a zero state, then a fresh plan for `obs`."""
    task = load_task_spec("inverted_pendulum")
    model = FilteredDynamics(MujocoDynamics(task), None, FilterConfig(mode="elite_mean", clip=None), task.is_terminal)
    planner = make_planner("mppi", model, task, **SETTINGS)
    planner.plan(np.zeros(task.obs_dim))
    planner.reset()
    return np.clip(planner.plan(obs, 0).actions[0], task.action_low, task.action_high)


def test_controller_plans_through_mujoco_without_a_bundle(tmp_path):
    domain = fresh_domain()
    client = Client(domain)
    commands = client.subscribe(Float64MultiArray, COMMAND_TOPIC, 10)
    states = client.node.create_publisher(JointState, "/joint_states",
                                          QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    controller = NodeProcess("controller_node", {
        "task": "inverted_pendulum", "model": "mujoco", "bundle": str(tmp_path / "no_bundle"), "lockstep": True,
        "stale_periods": 1000.0, **SETTINGS}, domain, tmp_path)
    client.watched = [controller]
    obs = np.array([0.1, 0.05, -0.2, 0.3])
    msg = JointState(name=["slider", "hinge"], position=obs[:2].tolist(), velocity=obs[2:].tolist())
    msg.header.stamp.sec = 1
    try:
        assert client.spin_until(lambda: states.get_subscription_count() > 0, 30.0), controller.output()
        states.publish(msg)
        assert client.spin_until(lambda: commands, 20.0), controller.output()
    finally:
        client.close()
    assert controller.stop() == 0
    np.testing.assert_allclose(commands[0].data, expected_command(obs), rtol=1e-6)
    assert "mppi (true model, no filter: elite_mean) on MuJoCo InvertedPendulum-v5 nominal" in controller.output()
