"""Multi-process ROS 2 test helpers: nodes as subprocesses in a domain of their own, a client node to drive them."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor

# Every test module that starts nodes as processes marks itself with this: `pytest -m "not multiprocess"`
# runs the rest in a minute or two. These tests wait on what the nodes report (matched endpoints, message
# counts in their diagnostics), never on a fixed delay, and each gets a ROS domain of its own (fresh_domain).
MULTIPROCESS = pytest.mark.multiprocess

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "models" / "inverted_pendulum"
COMMAND_TOPIC = "/effort_controller/commands"
_DOMAINS = itertools.count()


def fresh_domain() -> int:
    """A ROS domain no earlier call in this test process returned. Nodes of a finished test (or of a test's
    failed first attempt) stay in DDS discovery for a while after they exit: a later test on their domain
    would match their endpoints and take a dead publisher for a live one. Concurrent test runs start at
    different places (by process id)."""
    return 1 + (os.getpid() * 7 + next(_DOMAINS)) % 100


def ros_args(params: dict) -> list[str]:
    """--ros-args -p k:=v ... for a node's parameters."""
    args = ["--ros-args"]
    for key, value in params.items():
        args += ["-p", f"{key}:={str(value).lower() if isinstance(value, bool) else value}"]
    return args


class NodeProcess:
    """`python -m morec_ros.<module> --ros-args -p k:=v ...` with its output in a log file.

    `command` replaces that line (`module` then only names the log), e.g. a runner.NodeProcess's command();
    `prefix` goes before it, e.g. `ip netns exec <name>` to run the node on another (virtual) host.
    """

    def __init__(self, module, params: dict, domain: int, log_dir: Path, *, command=None, prefix=()):
        self.log = log_dir / f"{module}_{domain}_{time.monotonic_ns()}.log"
        if command is None:
            command = [sys.executable, "-m", f"morec_ros.{module}", *ros_args(params)]
        args = [*prefix, *command]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         env=dict(os.environ, ROS_DOMAIN_ID=str(domain),
                                                  RCUTILS_LOGGING_BUFFERED_STREAM="1"))

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, sig=signal.SIGINT, timeout=10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class Client:
    """An rclpy node in the test process, on the same domain as the processes under test."""

    def __init__(self, domain: int, name="test_client"):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.watched: list[NodeProcess] = []

    def subscribe(self, msg_type, topic, qos=10) -> list:
        received = []
        self.node.create_subscription(msg_type, topic, received.append, qos)
        return received

    def diagnostics(self) -> list:
        return self.subscribe(DiagnosticArray, "/diagnostics")

    def spin_until(self, condition, timeout) -> bool:
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            for p in self.watched:
                assert p.proc.poll() is None, f"{p.log.name} died:\n{p.output()}"
            self.executor.spin_once(timeout_sec=0.02)
        return condition()

    def close(self):
        self.node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)


def recording(recorder: NodeProcess, *topics: str) -> bool:
    """Whether morec_record has matched a publisher on each of `topics` (it logs every match): what is published
    before that is not recorded."""
    output = recorder.output()
    return all(f"{topic}: 1 publisher(s)" in output for topic in topics)


def status_of(diagnostics: list, name_prefix: str):
    """The latest DiagnosticStatus whose name starts with `name_prefix` (as level, message, values), or None."""
    for msg in reversed(diagnostics):
        for status in msg.status:
            if status.name.startswith(name_prefix):
                return status.level, status.message, {kv.key: kv.value for kv in status.values}
    return None
