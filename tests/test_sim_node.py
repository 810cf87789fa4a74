"""The sim node in its own process, driven in lockstep over Fast DDS by this test's rclpy node."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from rosproc import fresh_domain  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64, Float64MultiArray  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

from morec.simulator import SimulatedRobot  # noqa: E402
from morec.task_spec import BaseState, load_task_spec, sim_dir  # noqa: E402

COMMAND_TOPIC = "/effort_controller/commands"
# Reliable + transient-local: also gets the state the sim published before this node was discovered.
LATCHED = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)


@pytest.fixture(autouse=True)
def localhost_only(monkeypatch):
    """Keep discovery on this machine: another machine on the subnet may run the same tests."""
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


class SimProcess:
    """`python -m morec_ros.sim_node` in lockstep on InvertedPendulum, plus a client node in the same domain."""

    def __init__(self, tmp_path, domain, seed, variant, params=()):
        self.log = tmp_path / f"sim_{domain}.log"
        args = [sys.executable, "-m", "morec_ros.sim_node", "--ros-args",
                "-p", "task:=inverted_pendulum", "-p", f"variant:={variant}", "-p", "mode:=lockstep",
                "-p", f"seed:={seed}", "-p", "diagnostics_period:=0.2", *(a for p in params for a in ("-p", p))]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         env=dict(os.environ, ROS_DOMAIN_ID=str(domain)))
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("sim_test_client", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.states, self.diagnostics, self.returns, self.clock = [], [], [], []
        self.node.create_subscription(JointState, "/joint_states", self.states.append, LATCHED)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.node.create_subscription(Float64, "/morec/episode_return", self.returns.append, 10)
        self.node.create_subscription(Clock, "/clock", self.clock.append, qos_profile_sensor_data)
        self.publisher = self.node.create_publisher(Float64MultiArray, COMMAND_TOPIC, 10)

    def spin_until(self, condition, timeout):
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            assert self.proc.poll() is None, f"sim node died:\n{self.log.read_text()}"
            self.executor.spin_once(timeout_sec=0.02)
        return condition()

    def start(self):
        assert self.spin_until(lambda: self.states and self.publisher.get_subscription_count() > 0, 20.0), (
            f"no initial state from the sim node:\n{self.log.read_text()}")

    def command(self, values, expect_state=True):
        count = len(self.states)
        self.publisher.publish(Float64MultiArray(data=[float(v) for v in values]))
        if expect_state:
            assert self.spin_until(lambda: len(self.states) > count, 5.0), "no state after a valid command"
            assert len(self.states) == count + 1, "lockstep must answer one command with one state"
        else:
            self.spin_until(lambda: len(self.states) > count, 0.3)
            assert len(self.states) == count, "a dropped command advanced the simulation"

    def call(self, srv_type, name, request):
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=5.0)
        future = client.call_async(request)
        self.spin_until(future.done, 5.0)
        return future.result()

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=10)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        return code


@pytest.fixture
def sim(tmp_path):
    started = []

    def start(domain, seed=0, variant="nominal", params=()):
        process = SimProcess(tmp_path, domain, seed, variant, params)
        started.append(process)
        process.start()
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
        if process.context.ok():
            rclpy.shutdown(context=process.context)


def positions(msg):
    return np.array(list(msg.position) + list(msg.velocity))


def stamp_ns(stamp):
    return stamp.sec * 1_000_000_000 + stamp.nanosec


# Pushes that end an episode (the pole leaves +-0.2 rad), out-of-range values that get clipped, and
# commands after the end (the first of them starts the next episode instead of stepping).
COMMANDS = [[0.5], [-1.0], [2.0], [9.0], [3.0], [3.0], [-0.5], [0.25], [0.0], [-0.25]]


def reference(seed, variant, commands):
    spec = load_task_spec("inverted_pendulum")
    robot = SimulatedRobot(spec, spec.variant(variant), seed, 1000)
    states, returns = [np.concatenate(robot.joint_state()[:2])], []
    for c in commands:
        if robot.done:
            robot.reset()
        else:
            robot.step(np.array(c, dtype=np.float64))
            if robot.done:
                returns.append(robot.episode_return)
        states.append(np.concatenate(robot.joint_state()[:2]))
    return np.array(states), returns


def run_lockstep(sim, domain, seed):
    s = sim(domain, seed=seed, variant="real")
    for c in COMMANDS:
        s.command(c)
    assert s.spin_until(lambda: s.returns, 2.0), "no episode return published"
    assert s.spin_until(lambda: s.clock and stamp_ns(s.clock[-1].clock) == stamp_ns(s.states[-1].header.stamp), 2.0)
    assert s.stop() == 0, s.log.read_text()
    return s


def test_lockstep_runs_are_deterministic_and_follow_the_commands(sim):
    runs = [run_lockstep(sim, fresh_domain(), seed=11), run_lockstep(sim, fresh_domain(), seed=11)]
    expected, expected_returns = reference(11, "real", COMMANDS)
    assert len(expected_returns) == 1, "the command sequence must end exactly one episode"
    for run in runs:
        assert run.states[0].name == ["slider", "hinge"]
        np.testing.assert_array_equal(np.array([positions(m) for m in run.states]), expected)
        assert [m.data for m in run.returns] == expected_returns
        stamps = [stamp_ns(m.header.stamp) for m in run.states]
        steps = np.diff(stamps) // 40_000_000  # 0.04 s control period; the reset after the end takes none
        assert sorted(steps.tolist()) == [0] + [1] * (len(COMMANDS) - 1)
    np.testing.assert_array_equal(positions(runs[0].states[-1]), positions(runs[1].states[-1]))


def test_paced_lockstep_never_runs_faster_than_its_real_time_factor(sim):
    # At twice real time a 0.04 s period allows a step every 0.02 s, however fast the commands come.
    s = sim(fresh_domain(), seed=1, params=["lockstep_paced:=true", "real_time_factor:=2.0"])
    s.command([0.0])
    start = time.monotonic()
    for _ in range(10):
        s.command([0.0])  # still exactly one state per command
    assert time.monotonic() - start >= 10 * 0.02 - 0.005
    assert s.stop() == 0, s.log.read_text()


def last_values(s):
    status = s.diagnostics[-1].status[0]
    return status.level, {kv.key: kv.value for kv in status.values}


def test_malformed_commands_are_dropped_counted_and_not_applied(sim):
    s = sim(fresh_domain(), seed=5)
    # Subscribers with the ROS default (reliable, volatile) and sensor-data (best-effort) QoS.
    reliable, best_effort = [], []
    s.node.create_subscription(JointState, "/joint_states", reliable.append, 10)
    s.node.create_subscription(JointState, "/joint_states", best_effort.append, qos_profile_sensor_data)

    s.command([0.5])
    s.command([0.5, 0.5], expect_state=False)
    s.command([], expect_state=False)
    s.command([float("nan")], expect_state=False)
    s.command([float("inf")], expect_state=False)
    s.command([-0.5])
    assert s.spin_until(lambda: s.diagnostics and last_values(s)[1]["commands_dropped"] == "4", 3.0)
    # WARN while commands are being dropped, OK again once a period passes without drops.
    assert DiagnosticStatus.WARN in [m.status[0].level for m in s.diagnostics]
    settled = (DiagnosticStatus.OK, "2")
    assert s.spin_until(lambda: (last_values(s)[0], last_values(s)[1]["total_steps"]) == settled, 3.0)
    values = last_values(s)[1]
    assert values["commands_dropped_wrong_length"] == "2" and values["commands_dropped_non_finite"] == "2"
    assert values["commands_received"] == "2"

    assert s.call(SetBool, "/morec_sim/pause", SetBool.Request(data=True)).message == "paused"
    s.command([1.0], expect_state=False)
    assert s.call(SetBool, "/morec_sim/pause", SetBool.Request(data=False)).message == "running"
    s.command([0.25])

    expected, _ = reference(5, "nominal", [[0.5], [-0.5], [0.25]])
    np.testing.assert_array_equal(np.array([positions(m) for m in s.states]), expected)
    final = stamp_ns(s.states[-1].header.stamp)
    for received in (reliable, best_effort):
        assert s.spin_until(lambda: received and stamp_ns(received[-1].header.stamp) == final, 2.0)
        np.testing.assert_array_equal(positions(received[-1]), expected[-1])

    count = len(s.states)
    assert s.call(Trigger, "/morec_sim/reset", Trigger.Request()).success
    assert s.spin_until(lambda: len(s.states) > count, 2.0), "no state after ~/reset"
    assert s.spin_until(lambda: last_values(s)[1]["episode"] == "2", 3.0)
    assert s.stop() == 0, s.log.read_text()
    assert "dropped command (wrong_length): 2 values, expected 1" in s.log.read_text()


def test_a_spec_with_a_base_publishes_odometry_that_gives_the_all_joints_observations(sim):
    """sim/robots/halfcheetah_odom.yaml: /joint_states without rootx/rootz/rooty, the base on /odom."""
    odom_spec = load_task_spec(sim_dir() / "robots" / "halfcheetah_odom.yaml")
    plain = load_task_spec("halfcheetah")
    s = sim(fresh_domain(), seed=2, params=[f"task:={odom_spec.path}"])
    odometry = []
    s.node.create_subscription(Odometry, "/odom", odometry.append, LATCHED)
    assert s.spin_until(lambda: odometry, 5.0), "no odometry from the sim node"
    commands = np.random.default_rng(3).uniform(-1, 1, size=(15, plain.action_dim))
    for c in commands:
        s.command(c)
    assert s.spin_until(lambda: len(odometry) == len(s.states), 5.0)
    assert s.stop() == 0, s.log.read_text()

    assert all(m.name == list(odom_spec.state_joints) for m in s.states)
    base_at = {stamp_ns(m.header.stamp): BaseState.from_odometry(m) for m in odometry}
    got = [odom_spec.observation_from_joint_state(m.name, m.position, m.velocity, base_at[stamp_ns(m.header.stamp)])
           for m in s.states]
    robot = SimulatedRobot(plain, plain.variant("nominal"), 2, 1000)
    expected = [plain.observation_from_joint_state(plain.joints, *robot.joint_state()[:2])]
    for c in commands:
        robot.step(c)
        expected.append(plain.observation_from_joint_state(plain.joints, *robot.joint_state()[:2]))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_the_sim_node_starts_without_onnx_runtime_or_torch():
    """A robot-side or sim-only machine needs neither: the node must not import them on the way."""
    code = ("import sys, morec_ros.sim_node; "
            "print(sorted(m for m in ('onnxruntime', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
