"""A plain `colcon build` of ros2_ws, as a ROS distro user runs it (here colcon from pip on the ROS wheels), in
a scratch copy of the checkout: the installed packages find their shipped files through the ament index, a
node starts from the install space, `ros2 launch morec_ros <file>` finds its files, `colcon test` runs the
packages' tests."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from rosproc import REPO, fresh_domain

# This interpreter's colcon: the scripts it installs must start this interpreter, which has rclpy.
COLCON = Path(sys.executable).parent / "colcon"
pytestmark = pytest.mark.skipif(not COLCON.exists(), reason=f"no {COLCON}: `make setup` installs "
                                "colcon-common-extensions from requirements.txt")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """ros2_ws built in a copy of what the build reads: the packages and the shared files at the root."""
    root = tmp_path_factory.mktemp("checkout")
    for part in ("ros2_ws/src", "sim", "models", "launch"):
        shutil.copytree(REPO / part, root / part, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    ws = root / "ros2_ws"
    colcon(ws, "build")
    return ws


def colcon(ws: Path, *args) -> str:
    # An empty COLCON_HOME: no user defaults (such as --symlink-install) change the build.
    env = dict(os.environ, COLCON_HOME=str(ws.parent / "colcon_home"))
    done = subprocess.run([COLCON, *args], cwd=ws, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def sourced(ws: Path, command: str) -> list[str]:
    """`command` in a shell that sourced the install space, as a user's would."""
    return ["bash", "-c", f"source {ws}/install/setup.bash && exec {command}"]


def test_the_installed_core_reads_its_installed_task_specs(workspace):
    # morec.share does ament_index_python's lookup without importing it (the core imports nothing from ROS).
    probe = ("import morec.task_spec as t; from ament_index_python.packages import get_package_share_directory as g; "
             "print(t.__file__); print(t.sim_dir()); print(g(\"morec\"))")
    done = subprocess.run(sourced(workspace, f"{sys.executable} -c '{probe}'"), cwd=workspace.parent,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    module, specs, ament_share = done.stdout.split()
    install = workspace / "install" / "morec"
    assert Path(module).is_relative_to(install), "the checkout's editable install was imported"
    assert Path(specs) == Path(ament_share) / "sim" == install / "share" / "morec" / "sim"


def test_the_sim_node_starts_from_the_install_space(workspace, tmp_path):
    node = workspace / "install" / "morec_ros" / "lib" / "morec_ros" / "morec_sim"
    log = tmp_path / "sim.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(sourced(workspace, f"{node} --ros-args -p task:=inverted_pendulum"),
                                cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ, ROS_DOMAIN_ID=str(fresh_domain()),
                                         RCUTILS_LOGGING_BUFFERED_STREAM="1"))
    try:
        deadline = time.monotonic() + 40
        # Its first line once the task spec is loaded and the simulator built.
        while "InvertedPendulum-v5 (nominal), realtime" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class _Action:
    """Stands in for every class of launch and launch_ros (neither has wheels): keeps its arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def perform(self, context):  # as LaunchConfiguration
        return context[self.args[0]]


def _stand_in(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    classes = {}
    module.__getattr__ = lambda attr: classes.setdefault(attr, type(attr, (_Action,), {}))
    return module


def _nodes(path: Path, arguments: dict) -> list[_Action]:
    """The Node actions of a launch file run with `arguments`, its includes followed."""
    spec = importlib.util.spec_from_file_location(path.name.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context, nodes = dict(arguments), []
    for action in module.generate_launch_description().args[0]:
        kind = type(action).__name__
        if kind == "DeclareLaunchArgument":
            context.setdefault(action.args[0], action.kwargs["default_value"])
        elif kind == "IncludeLaunchDescription":
            nodes += _nodes(Path(action.args[0].args[0]), dict(action.kwargs["launch_arguments"]))
        elif kind == "OpaqueFunction":
            nodes += [a for a in action.kwargs["function"](context) if type(a).__name__ == "Node"]
    return nodes


def test_ros2_launch_by_package_name_finds_the_installed_files(workspace, monkeypatch):
    for name in ("launch", "launch.actions", "launch.substitutions", "launch.launch_description_sources",
                 "launch_ros", "launch_ros.actions"):
        monkeypatch.setitem(sys.modules, name, _stand_in(name))
    install = workspace / "install" / "morec_ros"
    share = install / "share" / "morec_ros"
    for config, count in (("full", 5), ("sim_only", 1), ("robot_only", 4)):
        # `ros2 launch morec_ros <file>` looks for the file name anywhere under the package's share directory.
        found = list(share.rglob(f"{config}.launch.py"))
        assert len(found) == 1, found
        nodes = _nodes(found[0], {})
        assert len(nodes) == count, config
        for node in nodes:
            assert node.kwargs["package"] == "morec_ros"
            assert (install / "lib" / "morec_ros" / node.kwargs["executable"]).is_file()
            params = [Path(p) for p in node.kwargs["parameters"]]
            assert params and all(p.is_file() and p.is_relative_to(share) for p in params), params


def test_colcon_test_runs_the_packages_tests(workspace):
    colcon(workspace, "test")
    summary = colcon(workspace, "test-result", "--all")
    tests = re.search(r"Summary: (\d+) tests, 0 errors, 0 failures", summary)
    assert tests and int(tests.group(1)) > 0, summary
