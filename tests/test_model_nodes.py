"""The dynamics and filter nodes over DDS, and every model node refusing a bundle it cannot use."""

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rosproc import BUNDLE, COMMAND_TOPIC, MULTIPROCESS, Client, NodeProcess, fresh_domain, status_of  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64, Float64MultiArray  # noqa: E402

from morec.simulator import SimulatedRobot  # noqa: E402
from morec.task_spec import load_task_spec  # noqa: E402

pytestmark = MULTIPROCESS

WINDOW = 8  # real transitions the gap monitor averages


@pytest.fixture(autouse=True)
def localhost_only(monkeypatch):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def joint_state(stamp_ns, obs):
    msg = JointState(name=["slider", "hinge"], position=[float(x) for x in obs[:2]],
                     velocity=[float(x) for x in obs[2:]])
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return msg


def test_dynamics_and_filter_nodes_predict_score_and_detect_a_gap(tmp_path):
    domain = fresh_domain()
    client = Client(domain)
    candidates = client.subscribe(Float64MultiArray, "/morec/candidates", 100)
    predictions = client.subscribe(Float64MultiArray, "/morec/prediction", 100)
    scores = client.subscribe(Float64MultiArray, "/morec/dynamics_reward", 100)
    errors = client.subscribe(Float64, "/morec/prediction_error", 100)
    diagnostics = client.diagnostics()
    state_pub = client.node.create_publisher(JointState, "/joint_states", 10)
    command_pub = client.node.create_publisher(Float64MultiArray, COMMAND_TOPIC, 10)
    common = {"task": "inverted_pendulum", "bundle": str(BUNDLE), "device": "cpu", "diagnostics_period": 0.2}
    nodes = [NodeProcess("dynamics_node", common, domain, tmp_path),
             NodeProcess("filter_node", {**common, "monitor_window": WINDOW}, domain, tmp_path)]
    client.watched = nodes
    spec = load_task_spec("inverted_pendulum")
    robot = SimulatedRobot(spec, spec.variant("nominal"), seed=2, episode_length=1000)
    rng = np.random.default_rng(0)
    period_ns = 40_000_000
    stamp = 0

    def observe():
        return np.concatenate(robot.joint_state()[:2])

    def transition(next_obs=None):
        """A command in the current state, then the next state (the robot's, unless given) a period later."""
        nonlocal stamp
        # Each node's own count: in the warm-up below one node may answer a command the other missed.
        answered = len(scores), len(candidates)
        command = rng.uniform(-0.3, 0.3, 1)
        command_pub.publish(Float64MultiArray(data=command.tolist()))
        assert client.spin_until(lambda: len(scores) > answered[0] and len(candidates) > answered[1], 20.0)
        if robot.done:
            robot.reset()  # a reset state keeps the stamp: no transition
        else:
            robot.step(command)
            stamp += period_ns
        client.spin_until(lambda: False, 0.05)  # causal gap between the command and the next state, as on a robot
        state_pub.publish(joint_state(stamp, observe() if next_obs is None else next_obs))
        client.spin_until(lambda: False, 0.05)

    def status(prefix):
        return status_of(diagnostics, prefix) or (None, "", {})

    try:
        ready = lambda: all(p.get_subscription_count() >= 2 for p in (state_pub, command_pub))  # noqa: E731
        assert client.spin_until(ready, 30.0), [p.output() for p in nodes]
        # A reader may match the publisher a little after the publisher matched it, and a state sent in
        # between is lost: repeat the first state (same stamp: no transition) until both nodes answer.
        for _ in range(20):
            state_pub.publish(joint_state(stamp, observe()))
            client.spin_until(lambda: False, 0.1)
            command_pub.publish(Float64MultiArray(data=[0.0]))
            if client.spin_until(lambda: len(scores) and len(candidates), 1.0):
                break
        for _ in range(2 * WINDOW):
            transition()
        layout = candidates[-1].layout.dim
        assert [(d.label, d.size) for d in layout] == [("candidates", 10), ("state", 4)]
        assert len(predictions[-1].data) == 4 and len(scores[-1].data) == 3
        assert abs(scores[-1].data[2] - time.time()) < 5.0  # the answered command's send time
        consistent_error = np.mean([m.data for m in errors])
        consistent = client.spin_until(lambda: int(status("morec_filter")[2].get("transitions", 0)) >= WINDOW, 15.0)
        assert consistent and status("morec_filter")[0] == DiagnosticStatus.OK, status("morec_filter")

        # The "robot" now jumps to states the dynamics cannot explain: the monitor must warn.
        for _ in range(WINDOW + 2):
            transition(next_obs=observe() + rng.normal(0.0, 0.5, 4))
        warned = client.spin_until(lambda: status("morec_filter")[0] == DiagnosticStatus.WARN, 15.0)
        assert warned, status("morec_filter")
        level, message, values = status("morec_filter")
        assert "sim-to-real gap" in message and values["gap_warning"] == "True"
        assert float(values["real_score_mean"]) < 0.6
        assert np.mean([m.data for m in errors[-WINDOW:]]) > 5 * consistent_error

        # Malformed input is dropped and counted by both nodes.
        command_pub.publish(Float64MultiArray(data=[0.1, 0.2]))
        state_pub.publish(joint_state(stamp + period_ns, [0.0, float("inf"), 0.0, 0.0]))
        for prefix in ("morec_dynamics", "morec_filter"):
            assert client.spin_until(lambda: status(prefix)[2].get("messages_dropped") == "2", 15.0), status(prefix)
            assert status(prefix)[2]["command_wrong_length"] == "1"
    finally:
        client.close()
        codes = [p.stop() for p in nodes]
    assert codes == [0, 0], [p.output() for p in nodes]


def corrupt(tmp_path):
    bundle = tmp_path / "corrupt"
    shutil.copytree(BUNDLE, bundle, dirs_exist_ok=True)
    (bundle / "ensemble.onnx").write_bytes(b"\x08\x07garbage, not an onnx graph")
    return bundle


def no_reward(tmp_path):
    bundle = tmp_path / "no_reward"
    shutil.copytree(BUNDLE, bundle, dirs_exist_ok=True)
    (bundle / "dynamics_reward.onnx").unlink(missing_ok=True)
    return bundle


# node, task, bundle maker, what the FATAL message must say
CASES = [
    ("controller_node", "inverted_pendulum", corrupt, ["corrupt/ensemble.onnx", "is not a loadable ONNX graph",
                                                       "re-export it with `morec export`"]),
    ("dynamics_node", "inverted_pendulum", corrupt, ["corrupt/ensemble.onnx", "re-export"]),
    ("filter_node", "inverted_pendulum", no_reward, ["no_reward/dynamics_reward.onnx", "not found", "morec export"]),
    ("controller_node", "inverted_pendulum", lambda tmp: tmp / "nowhere", ["nowhere/ensemble.onnx", "not found"]),
    ("controller_node", "halfcheetah", lambda tmp: BUNDLE, ["ensemble.onnx was trained for obs_dim=4",
                                                           "task has obs_dim=17", "use the bundle made for this task"]),
]


def test_nodes_refuse_bundles_they_cannot_use(tmp_path):
    runs = []
    for i, (module, task, make, _) in enumerate(CASES):
        args = [sys.executable, "-m", f"morec_ros.{module}", "--ros-args", "-p", f"task:={task}",
                "-p", f"bundle:={make(tmp_path)}", "-p", "device:=cpu"]
        runs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "ROS_DOMAIN_ID": str(fresh_domain())}))
    for run, (module, task, _, expected) in zip(runs, CASES):
        output, _ = run.communicate(timeout=60)
        assert run.returncode == 1, (module, output)
        assert "[FATAL]" in output and "cannot start" in output and "Traceback" not in output, output
        for text in expected:
            assert text in output, (module, text, output)
