"""`morec up`'s process runner: starts the nodes of a config, prefixes their output, stops them all."""

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import yaml
from rosproc import fresh_domain

from morec import runner


@pytest.fixture(autouse=True)
def localhost_only(monkeypatch):
    """Keep discovery on this machine: another machine on the subnet may run the same tests."""
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def pids(output):
    return {name: int(pid) for name, pid in re.findall(r"\[runner\] started (\S+) \(pid (\d+)\)", output)}


def script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_config(tmp_path):
    """A config of fake nodes: shell scripts that report their arguments and domain."""
    (tmp_path / "params.yaml").write_text("/**:\n  ros__parameters: {}\n")
    report = 'echo "args: $*"; echo "domain: $ROS_DOMAIN_ID"\n'
    script(tmp_path, "sleeper", report + "trap 'echo bye; exit 0' INT\nwhile :; do sleep 0.05; done\n")
    script(tmp_path, "stubborn", report + "trap '' INT TERM\nwhile :; do sleep 0.05; done\n")
    script(tmp_path, "crasher", report + "sleep 0.5; echo crashing; exit 3\n")

    def make(*names):
        lines = ["nodes:"] + [f"  - {{name: {n}, executable: ./{n}, params: params.yaml}}" for n in names]
        path = tmp_path / f"{'_'.join(names)}.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    return make


def test_a_dying_node_stops_the_others_and_fails(fake_config, tmp_path):
    out = io.StringIO()
    handler = signal.getsignal(signal.SIGINT)
    start = time.monotonic()
    code = runner.up(fake_config("sleeper", "stubborn", "crasher"), domain_id=42, stop_timeout=0.5, output=out)
    text = out.getvalue()
    assert code == 3, text
    assert time.monotonic() - start < 10
    params = tmp_path / "params.yaml"
    assert f"[sleeper] args: --ros-args -r __node:=sleeper --params-file {params}" in text
    assert "[stubborn] domain: 42" in text and "[crasher] crashing" in text
    assert "[runner] crasher exited (3); stopping the others" in text
    assert "[sleeper] bye" in text  # stopped with SIGINT, cleanly
    assert "[runner] stubborn still running: SIGKILL" in text  # ignores SIGINT and SIGTERM
    assert not any(alive(pid) for pid in pids(text).values())
    assert signal.getsignal(signal.SIGINT) is handler  # restored


def test_ctrl_c_stops_all_and_succeeds(fake_config):
    config = fake_config("sleeper")
    proc = subprocess.Popen([sys.executable, "-m", "morec.runner", str(config)], stdout=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 20
    while not any("[sleeper] domain:" in line for line in lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0, "".join(lines)
    reader.join(timeout=2)
    text = "".join(lines)
    assert "[sleeper] bye" in text and "[runner] sleeper stopped (0)" in text
    assert not alive(pids(text)["sleeper"])


def test_unknown_config_or_missing_executable_starts_nothing(tmp_path, fake_config):
    out = io.StringIO()
    assert runner.up("no_such_config", output=out) == 2
    assert "sim_only" in out.getvalue()  # lists the configs there are
    (tmp_path / "missing.yaml").write_text("nodes:\n  - {name: a, executable: morec_no_such_node}\n")
    out = io.StringIO()
    assert runner.up(tmp_path / "missing.yaml", output=out) == 2
    assert "not found: executable morec_no_such_node" in out.getvalue() and "started" not in out.getvalue()
    assert runner.up(fake_config("sleeper"), domain_id=300, output=io.StringIO()) == 2


def test_a_caller_adds_parameter_files_and_overrides_and_stops_the_run(fake_config, tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("/**:\n  ros__parameters: {}\n")
    config, out, stop = fake_config("sleeper"), io.StringIO(), threading.Event()
    timer = threading.Timer(1.0, stop.set)
    timer.start()
    code = runner.up(config, params=[extra], overrides={"sleeper": {"mode": "lockstep", "steps": 60, "paused": True}},
                     stop=stop, stop_timeout=2.0, output=out)
    text = out.getvalue()
    assert code == 0, text
    # After every file, qualified with the node's name: a node's own section in a file would beat a plain -p.
    assert (f"args: --ros-args -r __node:=sleeper --params-file {tmp_path / 'params.yaml'} --params-file {extra} "
            '-p sleeper:mode:="lockstep" -p sleeper:steps:=60 -p sleeper:paused:=true') in text
    assert "[sleeper] bye" in text
    assert runner.up(config, overrides={"nobody": {"x": 1}}, output=io.StringIO()) == 2
    missing = io.StringIO()
    assert runner.up(config, params=[tmp_path / "missing.yaml"], output=missing) == 2
    assert "not found" in missing.getvalue() and "started" not in missing.getvalue()


def test_the_task_and_its_parameter_file_reach_every_node(fake_config):
    config, stop = fake_config("sleeper"), threading.Event()
    tasks = runner.config_dir().parent / "params" / "tasks"
    for task, expected in (("inverted_pendulum", f"--params-file {tasks / 'inverted_pendulum.yaml'} "
                                                 '-p sleeper:task:="inverted_pendulum"'),
                           ("sim/mine.yaml", '-p sleeper:task:="sim/mine.yaml"')):  # a task without a file
        out = io.StringIO()
        timer = threading.Timer(0.5, stop.set)
        timer.start()
        assert runner.up(config, task=task, stop=stop, stop_timeout=2.0, output=out) == 0
        stop.clear()
        assert expected in out.getvalue()
    assert "tasks" not in out.getvalue()


def test_the_shipped_stack_runs_its_task_with_the_task_parameter_file():
    # What `morec up robot_only` starts with no --task: stack.yaml's task, with its working controller settings.
    nodes = runner.load_config("robot_only")
    task = runner.configured_task(nodes[0].params)
    assert task == "halfcheetah"
    controller = yaml.safe_load(runner.task_params(task).read_text())["morec_controller"]["ros__parameters"]
    assert controller["prior_policy"] and controller["samples"] <= 100


def test_shipped_configs_name_existing_parameter_files():
    for name in ("full", "sim_only", "robot_only"):
        path = runner.config_dir() / f"{name}.yaml"
        for node in yaml.safe_load(path.read_text())["nodes"]:
            assert node["params"] and all((path.parent / p).is_file() for p in node["params"]), (name, node)
    nodes = runner.load_config("sim_only")
    assert [n.name for n in nodes] == ["morec_sim"] and nodes[0].executable.name == "morec_sim"


def test_sim_only_brings_up_the_sim_node_in_the_given_domain():
    rclpy = pytest.importorskip("rclpy")
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState

    domain = fresh_domain()
    proc = subprocess.Popen([sys.executable, "-m", "morec.runner", "sim_only", "--domain-id", str(domain)],
                            stdout=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    try:
        node = rclpy.create_node("runner_test_client", context=context)
        states = []
        node.create_subscription(JointState, "/joint_states", states.append, 10)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + 20
        while len(states) < 3 and time.monotonic() < deadline and proc.poll() is None:
            executor.spin_once(timeout_sec=0.05)
        assert len(states) >= 3, "".join(lines)
        assert "bthigh" in states[-1].name  # the task of launch/params/stack.yaml
    finally:
        rclpy.shutdown(context=context)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
        reader.join(timeout=2)
    text = "".join(lines)
    assert code == 0, text
    assert "[morec_sim] [INFO]" in text and "HalfCheetah-v5 (real), realtime" in text
    assert not alive(pids(text)["morec_sim"])


def test_one_process_runs_the_nodes_in_one_morec_stack_and_a_node_that_cannot_start_stops_it():
    pytest.importorskip("rclpy")
    out = io.StringIO()
    code = runner.up("full", fresh_domain(), task="inverted_pendulum", one_process=True, output=out,
                     overrides={"morec_controller": {"samples": 1, "device": "cpu"}})
    text = out.getvalue()
    assert code == 1, text
    assert list(pids(text)) == ["morec_stack"], text  # one process for the five nodes
    # Each node with its own name, parameter files and overrides, as its own process would get them.
    command = re.search(r"\[runner\] started morec_stack \(pid \d+\): (.*)", text)[1]
    assert "morec_sim --ros-args -r __node:=morec_sim --params-file" in command
    assert '-p morec_controller:samples:=1 -p morec_controller:device:="cpu" --' in command
    assert "[morec_stack] [INFO]" in text and "[morec_guard]" in text  # the nodes before it started
    assert re.search(r"\[FATAL\] \[\d+\.\d+\] \[morec_controller\]: "
                     r"cannot start: parameter samples=1: need samples", text)
    assert "Traceback" not in text


def test_morec_stack_rejects_a_node_it_does_not_run():
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "morec_stack"), "morec_record",
                           "--ros-args", "--"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "morec_record is not a node morec_stack runs" in proc.stderr, proc.stderr
