"""`morec_stack`: several nodes of the stack in one process, each on an executor and thread of its own.

    morec_stack morec_sim --ros-args -r __node:=morec_sim --params-file stack.yaml -- \\
                morec_controller --ros-args -r __node:=morec_controller --params-file stack.yaml -p lockstep:=true --

Each node is named by its executable (the console script that runs it in a process of its own) and followed by
the ROS arguments that process would get, up to `--`: its name, parameter files and overrides apply to that
node alone, so it runs with the same parameters and behaves as in its own process (`morec up --one-process`
and `ros2 launch morec_ros morec.launch.py one_process:=true` start it so). Arguments after a last
`--ros-args` apply to the process. The nodes' callbacks run concurrently, each node's one at a time, as
in separate processes; messages between them still go through DDS.

A node that cannot start, or whose callback raises, stops the process (FATAL with its reason, exit code 1).
SIGINT or SIGTERM stops the nodes in reverse order, so the command guard still sends its zeros to a sim in the
same process. The recorder is left out: it drains and closes its files as its own process stops.
"""

import signal
import sys
import threading

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.logging import get_logger
from rclpy.signals import SignalHandlerOptions

from morec_ros.controller_node import ControllerNode
from morec_ros.dynamics_node import DynamicsNode
from morec_ros.filter_node import FilterNode
from morec_ros.guard_node import GuardNode
from morec_ros.node_main import START_ERRORS
from morec_ros.parameters import reject_undeclared_parameters
from morec_ros.sim_node import SimNode

NODES = {'morec_sim': SimNode, 'morec_dynamics': DynamicsNode, 'morec_filter': FilterNode,
         'morec_guard': GuardNode, 'morec_controller': ControllerNode}


def parse(args: list[str]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """([(executable, its ROS arguments)], the process's ROS arguments) from the command line after the program."""
    nodes, rest = [], list(args)
    while rest and rest[0] != '--ros-args':
        executable = rest.pop(0)
        if executable not in NODES:
            raise ValueError(f'{executable} is not a node morec_stack runs; it runs {", ".join(NODES)}')
        if not rest or rest[0] != '--ros-args':
            raise ValueError(f'{executable} must be followed by --ros-args <its arguments> --')
        end = rest.index('--') if '--' in rest else len(rest)
        nodes.append((executable, rest[:end]))
        rest = rest[end + 1:]
    if not nodes:
        raise ValueError('no node to run')
    return nodes, rest


def node_name(executable: str, ros_args: list[str]) -> str:
    """The name the arguments give the node (-r __node:=...), else its executable's."""
    names = [a.split(':=', 1)[1] for a in ros_args if a.startswith('__node:=')]
    return names[-1] if names else executable


def main(args=None) -> int:
    argv = sys.argv if args is None else args
    try:
        groups, process_args = parse(argv[1:])
    except ValueError as e:
        print(f'morec_stack: {e}\nusage: morec_stack <node> --ros-args <its arguments> -- [<node> ...]',
              file=sys.stderr)
        return 2
    # The nodes' own arguments stay off rclpy.init: global ones would apply to every node.
    rclpy.init(args=argv[:1] + process_args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    nodes = []
    for executable, ros_args in groups:
        try:
            nodes.append(NODES[executable](cli_args=ros_args))
            reject_undeclared_parameters(nodes[-1])
        except START_ERRORS as e:
            get_logger(node_name(executable, ros_args)).fatal(f'cannot start: {e}')
            for node in reversed(nodes):
                node.destroy_node()
            rclpy.try_shutdown()
            return 1
    # An executor per node, each spinning in a thread of its own: each node's callbacks run one at a time and
    # apart from the others', as in separate processes. (One MultiThreadedExecutor for all nodes passed a
    # lockstep step only every 0.1-0.4 s here: its wait did not wake when a callback on a pool thread ended.)
    executors = [SingleThreadedExecutor() for _ in nodes]
    failed = []

    def spin(node, executor):
        try:
            executor.spin()
        except Exception as e:  # a callback raised: its own process would have died, so the stack stops
            get_logger(node.get_name()).fatal(f'stopped: {type(e).__name__}: {e}')
            failed.append(node.get_name())
            stop.set()

    threads = []
    for node, executor in zip(nodes, executors):
        executor.add_node(node)
        threads.append(threading.Thread(target=spin, args=(node, executor), name=node.get_name(), daemon=True))
        threads[-1].start()
    try:
        while not stop.is_set() and rclpy.ok():
            stop.wait(0.05)
    finally:
        # In reverse order: a node named before the guard (the sim) still spins while the guard sends its zeros.
        for node, executor, thread in reversed(list(zip(nodes, executors, threads))):
            executor.shutdown()
            thread.join(timeout=5.0)
            node.destroy_node()
        rclpy.try_shutdown()
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
