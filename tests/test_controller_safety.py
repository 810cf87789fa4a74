"""The controller's safety behaviour over DDS, one smoke test each: the watchdog on the node's steady-clock timer,
and real JointState messages checked, answered by a policy, clipped and reported. The logic behind both is
test_control_loop.py's, on a fake clock."""

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
torch = pytest.importorskip("torch")
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from rosproc import BUNDLE, COMMAND_TOPIC, MULTIPROCESS, Client, NodeProcess, fresh_domain, status_of  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from morec.task_spec import load_task_spec  # noqa: E402

pytestmark = MULTIPROCESS

# As the sim publishes /joint_states: a lockstep controller subscribes transient-local.
SIM_STATE_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
PERIOD = load_task_spec("inverted_pendulum").control_period


@pytest.fixture(autouse=True)
def localhost_only(monkeypatch):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def joint_state(stamp_s, position, velocity=(0.0, 0.0), names=("slider", "hinge")):
    msg = JointState(name=list(names), position=[float(p) for p in position], velocity=[float(v) for v in velocity])
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp_s), int(round(stamp_s % 1 * 1e9))
    return msg


def test_watchdog_commands_zero_when_states_stop_and_resumes_when_they_return(tmp_path, processes):
    domain = fresh_domain()
    client = Client(domain)
    commands = client.subscribe(Float64MultiArray, COMMAND_TOPIC, 100)
    diagnostics = client.diagnostics()
    states = client.node.create_publisher(JointState, "/joint_states", 10)
    robot = {"publishing": True, "time": 100.0}

    def publish_state():  # a robot at the control period, until it dies
        if robot["publishing"]:
            states.publish(joint_state(robot["time"], [0.0, 0.05]))
            robot["time"] += PERIOD

    client.node.create_timer(PERIOD, publish_state)
    # CEM on the unfiltered ensemble here (the closed-loop test covers filtered MPPI).
    controller = NodeProcess("controller_node", {
        "task": "inverted_pendulum", "bundle": str(BUNDLE), "planner": "cem", "rollout": "elite_mean",
        "samples": 32, "horizon": 5, "iterations": 2, "threads": 1,
        "device": "cpu", "stale_periods": 5.0, "diagnostics_period": 0.2}, domain, tmp_path)
    processes.append(controller)
    client.watched = [controller]

    def controller_status():
        return status_of(diagnostics, "morec_controller") or (None, "", {})

    def planning():
        return controller_status()[0] == DiagnosticStatus.OK and any(c.data[0] != 0.0 for c in commands[-5:])

    try:
        assert client.spin_until(planning, 40.0), controller.output()
        robot["publishing"] = False
        assert client.spin_until(lambda: controller_status()[0] == DiagnosticStatus.ERROR, 20.0), controller.output()
        count = len(commands)
        assert client.spin_until(lambda: len(commands) >= count + 5, 10.0), "no commands while stale"
        assert all(list(c.data) == [0.0] for c in commands[count:])
        assert "no new /joint_states" in controller_status()[1]

        robot.update(publishing=True, time=0.0)  # restarted, its clock from zero
        assert client.spin_until(planning, 30.0), controller.output()
    finally:
        client.close()
    assert controller.stop() == 0
    log = controller.output()
    assert "commanding zero until a fresh state is planned for" in log and "fresh state: resuming control" in log


class LinearPolicy(torch.nn.Module):
    """action = 10 * hinge angle + 1: out of range for |hinge| > 0.4."""

    def forward(self, obs):
        return 10.0 * obs[:, 1:2] + 1.0


def export_policy(path):
    torch.onnx.export(LinearPolicy(), (torch.zeros(1, 4),), str(path), input_names=["obs"], output_names=["action"],
                      dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}}, dynamo=False)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript ONNX exporter, as morec.export uses
def test_policy_answers_valid_states_clipped_and_reports_the_dropped_ones(tmp_path, processes):
    export_policy(tmp_path / "policy.onnx")
    domain = fresh_domain()
    client = Client(domain)
    commands = client.subscribe(Float64MultiArray, COMMAND_TOPIC, 100)
    diagnostics = client.diagnostics()
    states = client.node.create_publisher(JointState, "/joint_states", SIM_STATE_QOS)
    controller = NodeProcess("controller_node", {
        "task": "inverted_pendulum", "mode": "policy", "policy": str(tmp_path / "policy.onnx"), "lockstep": True,
        "stale_periods": 1000.0, "diagnostics_period": 0.2, "device": "cpu"}, domain, tmp_path)
    processes.append(controller)
    client.watched = [controller]

    def send(msg, expect):
        count = len(commands)
        states.publish(msg)
        if expect is None:
            client.spin_until(lambda: len(commands) > count, 0.5)
            assert len(commands) == count, "an invalid state was acted on"
        else:
            assert client.spin_until(lambda: len(commands) > count, 20.0), controller.output()
            assert len(commands) == count + 1
            np.testing.assert_allclose(commands[-1].data, [expect], rtol=1e-6)

    try:
        ready = lambda: (states.get_subscription_count() > 0  # noqa: E731
                         and client.node.count_publishers(COMMAND_TOPIC) > 0 and diagnostics)
        assert client.spin_until(ready, 30.0), controller.output()
        send(joint_state(1.0, [0.0, 0.05]), expect=1.5)
        send(joint_state(1.04, [0.0], velocity=[0.0], names=["slider"]), expect=None)  # a joint missing
        send(joint_state(1.04, [0.5, 0.0], names=["hinge", "slider"]), expect=3.0)  # by name; 6.0 clipped

        def dropped():
            values = (status_of(diagnostics, "morec_controller") or (None, "", {}))[2]
            return values.get("states_dropped") == "1" and values.get("commands") == "2" and values
        values = client.spin_until(dropped, 15.0) and dropped()
        assert values, controller.output()
        assert values["state_malformed"] == "1"
        assert DiagnosticStatus.WARN in [s.level for m in diagnostics for s in m.status if "controller" in s.name]
    finally:
        client.close()
    assert controller.stop() == 0
    assert "dropped message (state_malformed)" in controller.output()
