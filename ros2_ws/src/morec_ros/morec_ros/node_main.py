"""A node's main(): start-up errors in one line, clean stops on SIGINT and SIGTERM.

Kept apart from common.py so nodes that run no model (the simulator, the recorder) start without
importing ONNX Runtime.
"""

import signal
import threading

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.logging import get_logger
from rclpy.signals import SignalHandlerOptions

from morec.fileio import ModelFileError
from morec.task_spec import TaskSpecError
from morec_ros.parameters import reject_undeclared_parameters

# What a node that cannot start raises: bad parameters, a task spec or model file that does not fit.
START_ERRORS = (ModelFileError, TaskSpecError, ParameterException, ValueError)


def main_for(node_class, name: str):
    """A node's main(): a node that cannot start says why (FATAL, no traceback) and exits with 1; SIGINT and
    SIGTERM stop it cleanly.

    The signals only set a flag that the spin loop checks between callbacks. rclpy's own handlers shut the
    context down from another thread and raise KeyboardInterrupt wherever the main thread happens to be,
    inside the executor too; a sim node stopped that way once ignored SIGINT and SIGTERM until SIGKILL.
    With the flag the node also can still publish in destroy_node() (the command guard's last zeros).
    """

    def main(args=None):
        stop = threading.Event()
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        try:
            node = node_class()
            reject_undeclared_parameters(node)
        except START_ERRORS as e:
            get_logger(name).fatal(f'cannot start: {e}')
            rclpy.try_shutdown()
            return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            while not stop.is_set() and rclpy.ok():
                executor.spin_once(timeout_sec=0.05)
        except ExternalShutdownException:
            pass
        finally:
            node.destroy_node()
            rclpy.try_shutdown()
        return 0

    return main
