"""Two hosts: the simulated robot in one network namespace, the dynamics, filter, guard and controller nodes in
another, joined by a veth link. The closed loop runs across it and resumes after the controller is killed and
started again (docs/networking.md)."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
from rosproc import MULTIPROCESS, NodeProcess, fresh_domain  # noqa: E402

from morec import runner  # noqa: E402

pytestmark = MULTIPROCESS

PARAMS = runner.config_dir().parent / "params"
PROBE = Path(__file__).resolve().parent / "multihost_probe.py"
EPISODE = 100  # steps; 4 s of robot time at the pendulum's 25 Hz
# As `morec_demo --task inverted_pendulum` runs it: lockstep paced to real time, nominal robot, through the guard.
OVERRIDES = {"morec_sim": {"mode": "lockstep", "lockstep_paced": True, "variant": "nominal", "seed": 7,
                           "episode_length": EPISODE},
             "morec_guard": {"lockstep": True},
             "morec_controller": {"lockstep": True}}


@dataclass(frozen=True)
class Host:
    netns: str
    interface: str

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns]

    def packets(self) -> tuple[int, int]:
        """(received, sent) on the link to the other host."""
        out = subprocess.run(["ip", "-n", self.netns, "-j", "-s", "link", "show", "dev", self.interface],
                             check=True, capture_output=True, text=True).stdout
        stats = json.loads(out)[0]["stats64"]
        return stats["rx"]["packets"], stats["tx"]["packets"]


def ip(*args):
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


@pytest.fixture
def two_hosts():
    """(robot, workstation): two network namespaces on 10.231.<n>.0/24, joined by a veth pair; deleted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("`ip` (iproute2) is not installed")
    tag = os.getpid()
    robot, workstation = Host(f"morec_robot_{tag}", f"mrob{tag}"), Host(f"morec_ws_{tag}", f"mws{tag}")
    try:
        ip("netns", "add", robot.netns)
    except RuntimeError as e:
        pytest.skip(f"cannot create a network namespace: {e}")
    try:
        ip("netns", "add", workstation.netns)
        ip("link", "add", robot.interface, "netns", robot.netns, "type", "veth",
           "peer", "name", workstation.interface, "netns", workstation.netns)
        for host, address in ((robot, 1), (workstation, 2)):
            ip("-n", host.netns, "link", "set", "lo", "up")
            ip("-n", host.netns, "addr", "add", f"10.231.{tag % 250}.{address}/24", "dev", host.interface)
            ip("-n", host.netns, "link", "set", host.interface, "up")
            # A namespace has no default route, and without a route for multicast Fast DDS's discovery
            # announcements (239.255.0.1) never leave: the participants would not find each other.
            ip("-n", host.netns, "route", "add", "224.0.0.0/4", "dev", host.interface)
        yield robot, workstation
    finally:
        for host in (robot, workstation):  # deleting a namespace deletes its end of the veth pair
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True)


def start(config: str, name: str, host: Host, domain: int, log_dir: Path, *extra_params: Path) -> NodeProcess:
    """Node `name` of a shipped launch config, with the pendulum demo's parameters, on `host`."""
    node = next(n for n in runner.load_config(config) if n.name == name)
    node = dataclasses.replace(node, params=node.params + (PARAMS / "tasks" / "inverted_pendulum.yaml", *extra_params),
                               overrides=tuple(OVERRIDES.get(name, {}).items()))
    return NodeProcess(name, {}, domain, log_dir, command=node.command(), prefix=host.prefix())


def report(probe: NodeProcess) -> dict:
    """The probe's latest summary ({} before its first)."""
    lines = [line for line in probe.output().splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def wait_for(probe, nodes, condition, timeout, what) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in nodes:
            assert p.proc.poll() is None, f"{p.log.name} died:\n{p.output()}"
        seen = report(probe)
        if seen and condition(seen):
            return seen
        time.sleep(0.2)
    logs = "\n".join(f"--- {p.log.name}\n{p.output()[-3000:]}" for p in nodes)
    pytest.fail(f"no {what} within {timeout} s; the workstation saw {report(probe)}\n{logs}")


def test_closed_loop_across_two_hosts_survives_a_controller_restart(two_hosts, processes, tmp_path, monkeypatch):
    robot, workstation = two_hosts
    # Discovery over the link, by multicast; nothing the environment sets may narrow it.
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "SUBNET")
    monkeypatch.delenv("ROS_STATIC_PEERS", raising=False)
    monkeypatch.delenv("ROS_LOCALHOST_ONLY", raising=False)
    domain = fresh_domain()
    began = time.monotonic()

    sim = start("sim_only", "morec_sim", robot, domain, tmp_path)
    # The robot_only config, on the simulated robot's /clock (it comes over the link too).
    model_nodes = [start("robot_only", name, workstation, domain, tmp_path, PARAMS / "sim_time.yaml")
                   for name in ("morec_dynamics", "morec_filter", "morec_guard", "morec_controller")]
    controller = model_nodes[-1]
    probe = NodeProcess("multihost_probe", {}, domain, tmp_path, command=[sys.executable, str(PROBE)],
                        prefix=workstation.prefix())
    processes.extend([sim, *model_nodes, probe])
    running = [sim, *model_nodes, probe]

    # Lockstep: the sim takes a step only for a command, so states that keep coming to the workstation
    # mean the commands reach the robot; its own count comes back in its diagnostics.
    seen = wait_for(probe, running, lambda s: s["returns"] and s["scores"] > 0
                    and int(s["sim"].get("commands_received", 0)) >= EPISODE, 90.0, "first episode")
    first_episode = time.monotonic() - began
    assert seen["returns"][0] >= EPISODE / 2, f"the pendulum fell: {seen}"  # random commands: about 5
    assert {"morec_sim", "morec_dynamics", "morec_filter", "morec_controller"} <= set(seen["nodes"]), seen

    # A crash on the workstation: the robot stops stepping (nothing else commands it in lockstep).
    controller.stop(signal.SIGKILL)
    running.remove(controller)
    time.sleep(1.0)  # a command in flight may still land
    halted = report(probe)
    time.sleep(2.0)
    assert report(probe)["state_stamp_ns"] == halted["state_stamp_ns"], "the robot stepped with no controller"

    # Restarted, the controller gets the robot's latest state (transient local) and the loop goes on.
    restarted = time.monotonic()
    controller = start("robot_only", "morec_controller", workstation, domain, tmp_path, PARAMS / "sim_time.yaml")
    processes.append(controller)
    running.append(controller)
    episodes = len(halted["returns"])
    seen = wait_for(probe, running, lambda s: len(s["returns"]) > episodes, 90.0, "episode end after the restart")
    assert seen["state_stamp_ns"] > halted["state_stamp_ns"]
    assert seen["returns"][episodes] >= EPISODE / 2, f"the pendulum fell across the restart: {seen}"

    steps = int(report(probe)["sim"]["total_steps"])
    received, sent = robot.packets()
    # Every step is a state out of the robot and a command into it: over the veth link, not shared memory.
    assert received >= steps and sent >= steps, (received, sent, steps)
    print(f"first episode ended {first_episode:.1f} s after the start, the next {time.monotonic() - restarted:.1f} s "
          f"after the restart; returns {seen['returns']}; robot link: {received} packets in, {sent} out "
          f"for {steps} steps")
