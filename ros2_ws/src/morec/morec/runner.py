"""Process runner for the pip world (`morec up <config>`): `ros2 launch` has no wheels, this is the part of it we need.

A config (launch/configs/<name>.yaml, read by the launch files too) lists the nodes to start:

    nodes:
      - name: morec_sim                  # node name; also its section in the parameter files
        executable: morec_sim            # console script, or a path relative to the config
        package: morec_ros               # optional (default morec_ros): where a distro install keeps it
        params: [../params/stack.yaml]   # parameter files, relative to the config; later ones win

The task's own parameter file, launch/params/tasks/<task>.yaml when there is one (the controller
settings that work on that task: its prior policy, planner budget), is read after the config's files:
the task is the one named to `up`, else the one the config's files set.

Each node runs as its own process with `--ros-args -r __node:=<name> --params-file <file>...` (the
config's files, the task's, then any a caller such as `morec_demo` adds, then its overrides as
`-p <name>:<parameter>:=<value>`), its output prefixed with its name. Everything stops on Ctrl-C /
SIGTERM, or as soon as one node exits on its own; that is a failure and `up` returns non-zero.

With `one_process` the nodes run together in one process instead (`morec_stack`, in morec_ros; an
executor thread per node): each with its own name, parameter files and overrides, exactly the arguments its own
process would get; a node that cannot start stops them all.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, TextIO

import yaml

from .share import package_prefix, share_dir

DEFAULT_PACKAGE = "morec_ros"
STACK_EXECUTABLE = "morec_stack"  # runs several nodes in one process


class RunnerError(RuntimeError):
    """A config that cannot be started: unknown, malformed, or naming missing files."""


@dataclass(frozen=True)
class NodeProcess:
    name: str
    executable: Path
    params: tuple[Path, ...]
    overrides: tuple[tuple[str, Any], ...] = ()  # win over the parameter files

    def command(self) -> list[str]:
        args = [str(self.executable), "--ros-args", "-r", f"__node:={self.name}"]
        for path in self.params:
            args += ["--params-file", str(path)]
        # After the files and qualified with the node name: a plain `-p` loses to a node's own section
        # in a file. ROS reads the value as YAML, of which JSON is a part.
        for key, value in self.overrides:
            args += ["-p", f"{self.name}:{key}:={json.dumps(value)}"]
        return args


def one_process_command(nodes: Sequence[NodeProcess], stack: Path) -> list[str]:
    """`morec_stack` running `nodes`, each named by its executable and followed by its own ROS arguments."""
    args = [str(stack)]
    for node in nodes:
        args += [node.executable.name, *node.command()[1:], "--"]
    return args


def config_dir() -> Path:
    return share_dir(DEFAULT_PACKAGE) / "launch" / "configs"


def load_config(config: str | os.PathLike) -> list[NodeProcess]:
    """Read a config by name ("sim_only") or path, resolving executables and parameter files."""
    text = str(config)
    path = Path(text) if text.endswith((".yaml", ".yml")) or os.sep in text else config_dir() / f"{text}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in config_dir().glob("*.yaml"))
        raise RunnerError(f"no config {path}; configs in {config_dir()}: {known}")
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list) or not doc["nodes"]:
        raise RunnerError(f"{path}: expected 'nodes:' with a list of nodes")
    nodes, missing = [], []
    for i, item in enumerate(doc["nodes"]):
        if not (isinstance(item, dict) and all(isinstance(item.get(k), str) for k in ("name", "executable"))):
            raise RunnerError(f"{path}: nodes[{i}] needs a name and an executable, got {item!r}")
        unknown = set(item) - {"name", "executable", "package", "params"}
        if unknown:
            raise RunnerError(f"{path}: nodes[{i}]: unknown keys {sorted(unknown)}")
        params = item.get("params", [])
        params = [params] if isinstance(params, str) else params
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            raise RunnerError(f"{path}: nodes[{i}].params must be a file or a list of files")
        params = tuple((path.parent / p).resolve() for p in params)
        missing += [str(p) for p in params if not p.is_file()]
        executable = _find_executable(item["executable"], item.get("package", DEFAULT_PACKAGE), path.parent)
        if executable is None:
            missing.append(f"executable {item['executable']}")
        else:
            nodes.append(NodeProcess(item["name"], executable, params))
    names = [n["name"] for n in doc["nodes"]]
    if len(set(names)) != len(names):
        raise RunnerError(f"{path}: node names must be unique, got {names}")
    if missing:
        raise RunnerError(f"{path}: not found: {', '.join(missing)} (is the package installed? `make setup`)")
    return nodes


def _find_executable(executable: str, package: str, base: Path) -> Path | None:
    if os.sep in executable:
        candidate = (base / executable).resolve()
        return candidate if os.access(candidate, os.X_OK) else None
    # Console scripts sit next to the interpreter in a venv (activated or not), on PATH, or in
    # lib/<package> of a colcon / distro install prefix.
    search = [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    prefix = package_prefix(package)
    if prefix:
        search.append(str(prefix / "lib" / package))
    found = shutil.which(executable, path=os.pathsep.join(search))
    return Path(found) if found else None


class _Output:
    """Writes whole lines from several processes, each prefixed with its node name."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._lock = threading.Lock()

    def line(self, prefix: str, text: str) -> None:
        with self._lock:
            self._stream.write(f"[{prefix}] {text.rstrip()}\n")
            self._stream.flush()

    def pump(self, prefix: str, pipe) -> threading.Thread:
        def run():
            for text in pipe:
                self.line(prefix, text)

        thread = threading.Thread(target=run, name=f"output-{prefix}", daemon=True)
        thread.start()
        return thread


def task_params(task: str, params_dir: os.PathLike | None = None) -> Path | None:
    """params/tasks/<task>.yaml (in launch/ unless `params_dir` says where params/ is): the settings the stack
    runs that task with, if it has any."""
    path = Path(params_dir or config_dir().parent / "params") / "tasks" / f"{task}.yaml"
    return path if task and path.is_file() else None


def configured_task(param_files: Sequence[os.PathLike]) -> str | None:
    """The task parameter files set for every node (`/**`), the last file's winning."""
    task = None
    for path in map(Path, param_files):
        doc = yaml.safe_load(path.read_text()) or {}
        task = ((doc.get("/**") or {}).get("ros__parameters") or {}).get("task", task)
    return task


def up(config: str | os.PathLike, domain_id: int | None = None, *, task: str | None = None,
       params: Sequence[os.PathLike] = (), overrides: Mapping[str, Mapping[str, Any]] | None = None,
       stop: threading.Event | None = None, stop_timeout: float = 5.0, output: TextIO | None = None,
       one_process: bool = False) -> int:
    """Run the nodes of `config` until Ctrl-C / SIGTERM (returns 0) or until one exits (returns non-zero).

    `task` (a task name or spec path) is given to every node, with its parameter file when it has one;
    `params` are parameter files every node reads after those; `overrides` ({node name:
    {parameter: value}}) win over all files; setting `stop` ends the run as Ctrl-C does; `one_process` runs the
    nodes in one process (`morec_stack`).
    Must be called from the main thread (it handles SIGINT and SIGTERM while running).
    """
    out = _Output(output or sys.stdout)
    try:
        nodes = load_config(config)
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - {node.name for node in nodes})
        if unknown:
            raise RunnerError(f"overrides for nodes not in {config}: {unknown}")
        missing = [str(p) for p in params if not Path(p).is_file()]
        if missing:
            raise RunnerError(f"not found: {', '.join(missing)}")
        own = task_params(Path(task or configured_task(nodes[0].params if nodes else ()) or "").stem)
        extra = ((own,) if own else ()) + tuple(Path(p).resolve() for p in params)
        given = {"task": task} if task else {}
        nodes = [dataclasses.replace(node, params=node.params + extra,
                                     overrides=tuple({**given, **overrides.get(node.name, {})}.items()))
                 for node in nodes]
        commands = {node.name: node.command() for node in nodes}
        if one_process:
            stack = _find_executable(STACK_EXECUTABLE, DEFAULT_PACKAGE, Path.cwd())
            if stack is None:
                raise RunnerError(f"not found: executable {STACK_EXECUTABLE} (is morec_ros installed? `make setup`)")
            commands = {STACK_EXECUTABLE: one_process_command(nodes, stack)}
    except RunnerError as e:
        out.line("runner", f"error: {e}")
        return 2
    if domain_id is not None and not 0 <= domain_id <= 232:
        out.line("runner", f"error: ROS_DOMAIN_ID must be within 0..232, got {domain_id}")
        return 2

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # ROS loggers write INFO to stdout, fully buffered when it is a pipe: flush every line.
    env.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "1")
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)

    stop = threading.Event() if stop is None else stop
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    running: dict[str, subprocess.Popen] = {}
    pumps = []
    failure = None
    try:
        for name, command in commands.items():
            # A session of its own: a terminal's Ctrl-C reaches only the runner, which stops the
            # nodes in order instead of all of them racing.
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env=env, text=True, errors="replace",
                                    start_new_session=True)
            running[name] = proc
            pumps.append(out.pump(name, proc.stdout))
            out.line("runner", f"started {name} (pid {proc.pid}): {' '.join(command)}")
        while failure is None and not stop.wait(0.1):
            failure = next(((name, p.returncode) for name, p in running.items() if p.poll() is not None), None)
    except OSError as e:
        failure = ("runner", f"cannot start a node: {e}")
    finally:
        if failure is not None:
            out.line("runner", f"{failure[0]} exited ({failure[1]}); stopping the others")
        _stop_all(running, stop_timeout, out)
        for thread in pumps:
            thread.join(timeout=1.0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failure is not None:
        code = failure[1]
        return code if isinstance(code, int) and code > 0 else 1
    # Asked to stop: clean only if every node shut down on its own after SIGINT.
    clean = all(p.returncode in (0, -signal.SIGINT, 128 + signal.SIGINT) for p in running.values())
    return 0 if clean else 1


def _stop_all(running: dict[str, subprocess.Popen], timeout: float, out: _Output) -> None:
    """SIGINT (a ROS node's clean shutdown), then SIGTERM, then SIGKILL for whatever is still running."""
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
        alive = {name: p for name, p in running.items() if p.poll() is None}
        if not alive:
            break
        for name, proc in alive.items():
            if sig != signal.SIGINT:
                out.line("runner", f"{name} still running: {signal.Signals(sig).name}")
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        for proc in alive.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    for name, proc in running.items():
        out.line("runner", f"{name} stopped ({proc.returncode})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="morec up", description="Start the ROS 2 nodes of a launch config as "
                                     "processes (Ctrl-C stops them).")
    parser.add_argument("config", help="config name in launch/configs (full, sim_only, robot_only) or a YAML path")
    parser.add_argument("--task", help="the task every node runs (a name or spec path), with "
                        "launch/params/tasks/<task>.yaml when there is one (default: the task of the config's "
                        "parameter files, launch/params/stack.yaml's)")
    parser.add_argument("--domain-id", type=int, help="ROS_DOMAIN_ID for all nodes")
    parser.add_argument("--one-process", action="store_true",
                        help="run the nodes together in one process (morec_stack, an executor thread per node), "
                        "each with its own name and parameters, instead of one process per node")
    args = parser.parse_args(argv)
    return up(args.config, args.domain_id, task=args.task, one_process=args.one_process)


if __name__ == "__main__":
    sys.exit(main())
