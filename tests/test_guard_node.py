"""The command guard over DDS: a controller process killed with SIGKILL (its own watchdog dies with it) leaves the
robot on zeros within 3 control periods. The guard's checks are test_command_guard.py's, on a fake clock."""

import time

import pytest

rclpy = pytest.importorskip("rclpy")
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from morec.task_spec import load_task_spec  # noqa: E402
from morec_ros.common import MONITOR_QOS  # noqa: E402
from rosproc import MULTIPROCESS, COMMAND_TOPIC, REPO, Client, NodeProcess, domain_id  # noqa: E402

pytestmark = MULTIPROCESS

TASK = load_task_spec("halfcheetah")
P = TASK.control_period
REQUEST_TOPIC = "/morec/command_request"
POLICY = REPO / "models" / "behavior" / "halfcheetah" / "sac_50000.onnx"


@pytest.fixture(autouse=True)
def localhost_only(monkeypatch):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def test_killing_the_controller_zeroes_the_robot_command_within_3_periods(tmp_path, processes):
    domain = domain_id(80)
    client = Client(domain)
    commands = []  # (received on the wall clock in ns, values) of what the robot gets
    client.node.create_subscription(Float64MultiArray, COMMAND_TOPIC,
                                    lambda msg, info: commands.append((info["received_timestamp"], list(msg.data))),
                                    MONITOR_QOS)
    states = client.node.create_publisher(JointState, "/joint_states", MONITOR_QOS)
    robot = {"stamp": 0}

    def publish_state():  # a joint_state_broadcaster at the control period
        msg = JointState(name=list(TASK.joints), position=[0.0] * len(TASK.joints), velocity=[0.0] * len(TASK.joints))
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(robot["stamp"], 10**9)
        states.publish(msg)
        robot["stamp"] += round(P * 1e9)

    client.node.create_timer(P, publish_state)
    guard = NodeProcess("guard_node", {"task": "halfcheetah"}, domain, tmp_path)
    controller = NodeProcess("controller_node", {"task": "halfcheetah", "mode": "policy", "policy": str(POLICY),
                                                 "command_topic": REQUEST_TOPIC, "device": "cpu", "threads": 1},
                             domain, tmp_path)
    processes += [guard, controller]
    client.watched = [guard, controller]
    try:
        driving = lambda: sum(any(values) for _, values in commands) >= 20  # noqa: E731
        assert client.spin_until(driving, 60.0), controller.output() + guard.output()
        killed = time.time_ns()
        controller.proc.kill()
        client.watched = [guard]
        zeroed = lambda: any(t > killed and not any(values) for t, values in commands)  # noqa: E731
        assert client.spin_until(zeroed, 10 * P), guard.output()
        client.spin_until(lambda: False, 5 * P)  # and zeros go on
    finally:
        client.close()
    first_zero = next(i for i, (t, values) in enumerate(commands) if t > killed and not any(values))
    kill_to_zero = (commands[first_zero][0] - killed) / 1e9
    times = [t for t, _ in commands[:first_zero]]
    last_before = (killed - times[-1]) / 1e9
    longest_gap = max(b - a for a, b in zip(times[len(times) // 2:], times[len(times) // 2 + 1:])) / 1e9
    print(f"\nkill to zero {kill_to_zero * 1e3:.1f} ms = {kill_to_zero / P:.2f} control periods "
          f"(last command {last_before * 1e3:.1f} ms before the kill; longest gap between commands before it "
          f"{longest_gap / P:.2f} periods)")
    assert kill_to_zero <= 3 * P
    after = [values for _, values in commands[first_zero:]]
    assert not any(any(values) for values in after) and len(after) >= 4  # once per period until stopped
    assert guard.stop() == 0
    log = guard.output()
    assert "no valid command for" in log and "commanding zero until the controller sends again" in log
