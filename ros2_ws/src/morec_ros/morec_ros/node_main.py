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


def main_for(node_class, name: str, last_word: bool = False):
    """A node's main(): a node that cannot start says why (FATAL, no traceback) and exits with 1.

    With `last_word` the node can still publish in destroy_node() after SIGINT or SIGTERM: rclpy's own
    handlers would shut the context down first, so the signals only set a flag that the spin loop checks
    between callbacks (an exception raised at an arbitrary point inside the executor could leave it
    unable to stop cleanly).
    """

    def main(args=None):
        stop = threading.Event()
        if last_word:
            rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
        else:
            rclpy.init(args=args)
        try:
            node = node_class()
            reject_undeclared_parameters(node)
        except START_ERRORS as e:
            get_logger(name).fatal(f'cannot start: {e}')
            rclpy.try_shutdown()
            return 1
        try:
            if last_word:
                executor = SingleThreadedExecutor()
                executor.add_node(node)
                while not stop.is_set() and rclpy.ok():
                    executor.spin_once(timeout_sec=0.05)
            else:
                rclpy.spin(node)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except Exception:
            # Under load, rclpy can fail to take a message that arrived as Ctrl-C closed the context
            # (the executor raises from take_message): that is a clean stop, anything else is not.
            if rclpy.ok():
                raise
        finally:
            node.destroy_node()
            rclpy.try_shutdown()
        return 0

    return main
