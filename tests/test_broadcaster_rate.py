"""A stand-in joint_state_broadcaster at 250 Hz over DDS: the policy-mode controller commands at its own period and
the filter node pairs (almost) every control period into a transition. The same on a fake clock at 25, 250 and
1000 Hz: test_state_rates.py."""

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rosproc import COMMAND_TOPIC, MULTIPROCESS, REPO, Client, NodeProcess, fresh_domain, status_of  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from morec.task_spec import load_task_spec  # noqa: E402
from morec_ros.common import MONITOR_QOS  # noqa: E402

pytestmark = MULTIPROCESS

TASK = load_task_spec("halfcheetah")
P = TASK.control_period
RATE_HZ = 250
SECONDS = 5.0


def test_the_loop_works_with_a_250_hz_broadcaster(tmp_path, processes, monkeypatch):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    domain = fresh_domain()
    client = Client(domain)
    diagnostics = client.diagnostics()
    commands = []
    client.node.create_subscription(Float64MultiArray, COMMAND_TOPIC, commands.append, MONITOR_QOS)
    states = client.node.create_publisher(JointState, "/joint_states", MONITOR_QOS)
    zeros = [0.0] * len(TASK.joints)
    broadcast_times = []  # monotonic, one per message: the stand-in's rate and its longest silence

    def broadcast():  # stamped with the wall clock when read, as ros2_control's broadcaster does
        msg = JointState(name=list(TASK.joints), position=zeros, velocity=zeros)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
        states.publish(msg)
        broadcast_times.append(time.monotonic())

    client.node.create_timer(1.0 / RATE_HZ, broadcast)
    common = {"task": "halfcheetah", "device": "cpu", "threads": 1, "diagnostics_period": 0.5}
    # This test is about rates, not the watchdog (test_controller_safety): the stand-in lives in this test's
    # process, which a loaded machine can stall for a quarter of a second (the default 5 periods), so the
    # watchdog waits 1 s here. A stale event then means the loop stopped planning for a stream that flowed.
    controller = NodeProcess("controller_node", {**common, "mode": "policy", "stale_periods": 20,
                                                 "policy": str(REPO / "models" / "halfcheetah" / "policy.onnx")},
                             domain, tmp_path)
    monitor = NodeProcess("filter_node", common, domain, tmp_path)
    processes += [controller, monitor]
    client.watched = [controller, monitor]

    def transitions():
        """(when, transitions, gaps) of the filter's latest report, on its clock in seconds."""
        for msg in reversed(diagnostics):
            for status in msg.status:
                if status.name.startswith("morec_filter"):
                    values = {kv.key: int(kv.value) for kv in status.values if kv.key.startswith("transition")}
                    return (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, values["transitions"],
                            values["transition_gaps"])
        return 0.0, 0, 0

    try:
        assert client.spin_until(lambda: transitions()[1] >= 10, 60.0), controller.output() + monitor.output()
        first = transitions()
        sent, broadcast_from, start = len(commands), len(broadcast_times), time.monotonic()
        client.spin_until(lambda: False, SECONDS)
        last = transitions()
        elapsed, sent = time.monotonic() - start, len(commands) - sent
        rate = (len(broadcast_times) - broadcast_from) / elapsed
    finally:
        client.close()
    periods, paired, gaps = (last[0] - first[0]) / P, last[1] - first[1], last[2] - first[2]
    longest_silence = float(np.max(np.diff(broadcast_times)))
    print(f"\nbroadcaster at {rate:.0f} Hz: {sent} commands in {elapsed / P:.0f} control periods; between two of "
          f"its reports the filter paired {paired} transitions ({gaps} gaps) in {periods:.0f} periods; its "
          f"longest silence {longest_silence * 1e3:.0f} ms")
    assert rate >= 0.6 * RATE_HZ  # a busy machine slows the stand-in, but it stays far above the control rate
    assert paired >= 0.95 * periods
    # The controller does not answer every state (that would be elapsed x 250): a period carries the timer's
    # command and, when the plan of the state a period on comes after the tick, that plan's answer too.
    assert sent <= 2 * elapsed / P + 3
    level, message, values = status_of(diagnostics, "morec_controller")
    assert values["stale_events"] == "0", f"{message}; the stand-in's longest silence {longest_silence:.2f} s"
