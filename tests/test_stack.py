"""morec_stack in this process: a node whose callback raises stops the stack, as its own process would die."""

import pytest

pytest.importorskip("rclpy")
from rclpy.node import Node  # noqa: E402

from morec_ros import stack  # noqa: E402


class Failing(Node):
    def __init__(self, **kwargs):
        super().__init__("failing", **kwargs)
        self.create_timer(0.05, self._fail)

    def _fail(self):
        raise RuntimeError("sensor unplugged")


class Quiet(Node):
    def __init__(self, **kwargs):
        super().__init__("quiet", **kwargs)


def test_a_node_whose_callback_raises_stops_the_stack_and_fails(monkeypatch, capfd):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setattr(stack, "NODES", {"quiet": Quiet, "failing": Failing})
    monkeypatch.setattr(stack, "reject_undeclared_parameters", lambda node: None)
    code = stack.main(["morec_stack", "quiet", "--ros-args", "--", "failing", "--ros-args", "--"])
    assert code == 1
    assert "stopped: RuntimeError: sensor unplugged" in capfd.readouterr().err
