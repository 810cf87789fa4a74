"""`morec_record`: the stack's topics to MCAP with ROS 2 (CDR) encoding, in a rosbag2 folder.

Records /joint_states, /odom (the base state of task specs with a `base:` section), the command
topic, the model nodes' outputs (/morec/prediction, /morec/dynamics_reward, /morec/candidates,
/morec/plan, /morec/prediction_error, /morec/episode_return) and /diagnostics. Subscriptions are raw:
the CDR bytes DDS delivered go into the file as they are, with no deserialise/serialise per message.
They are reliable with a deep queue, so a recorder that falls behind for a moment buffers instead of dropping.
SIGINT or SIGTERM stops it cleanly: whatever has arrived is written, the files get their summaries and the
folder its metadata.yaml. Chunks are finished every `flush_period` seconds, which bounds what a SIGKILL loses.
"""

import signal
import sys
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import ParameterException
from rclpy.executors import SingleThreadedExecutor
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray

from morec_ros.bag_writer import BagWriter, default_folder
from morec_ros.node_params import RecordParams
from morec_ros.parameters import declare_params, reject_undeclared_parameters

TOPICS = {
    '/joint_states': JointState,
    '/odom': Odometry,
    '/morec/prediction': Float64MultiArray,
    '/morec/dynamics_reward': Float64MultiArray,
    '/morec/candidates': Float64MultiArray,
    '/morec/plan': Float64MultiArray,
    '/morec/controller_metrics': Float64MultiArray,
    '/morec/prediction_error': Float64,
    '/morec/episode_return': Float64,
    '/diagnostics': DiagnosticArray,
}
# How long the recorder keeps taking messages after a stop request once none arrives.
DRAIN_QUIET_S = 0.3


def type_name(msg_type) -> str:
    """sensor_msgs.msg.JointState -> 'sensor_msgs/msg/JointState'."""
    return f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"


class RecordNode(Node):

    def __init__(self, **kwargs):
        super().__init__('morec_record', **kwargs)
        p = declare_params(self, RecordParams)
        self._bag = BagWriter(p.output or default_folder(), int(p.split_size_mb * 1e6), p.split_duration,
                              p.chunk_kb * 1024,
                              metadata={'task': p.task, 'command_topic': p.command_topic, 'recorder': 'morec_record'})
        self.last_message = time.monotonic()
        qos = QoSProfile(depth=p.queue_depth, reliability=ReliabilityPolicy.RELIABLE)
        for topic, msg_type in {**TOPICS, p.command_topic: Float64MultiArray}.items():
            self._bag.add_topic(topic, type_name(msg_type))
            # A best-effort publisher cannot serve a reliable subscription: say so rather than record nothing.
            # What a volatile subscription gets starts when it has matched a publisher: say when.
            events = SubscriptionEventCallbacks(
                incompatible_qos=lambda event, t=topic: self.get_logger().warning(
                    f'{t}: a publisher offers QoS this reliable subscription cannot match '
                    f'({event.last_policy_kind.name}); its messages are not recorded'),
                matched=lambda event, t=topic: self.get_logger().info(f'{t}: {event.current_count} publisher(s)'))
            self.create_subscription(msg_type, topic, lambda data, info, t=topic: self._write(t, data, info), qos,
                                     event_callbacks=events, raw=True)
        self.create_timer(p.flush_period, self._bag.flush)
        self.get_logger().info(f'recording {len(TOPICS) + 1} topics to {self._bag.folder}')

    def _write(self, topic, data, info):
        # Log time: when DDS received it; publish time: the publisher's source timestamp (as rosbag2 stores them).
        self._bag.write(topic, data, info['received_timestamp'], info['source_timestamp'],
                        info.get('publication_sequence_number', 0))
        self.last_message = time.monotonic()

    def close(self):
        metadata = self._bag.close()
        counts = ', '.join(f'{t} {n}' for t, n in self._bag.counts.items() if n)
        self.get_logger().info(f'wrote {self._bag.message_count} messages ({counts or "none"}) to '
                               f'{len(self._bag.files)} file(s); {metadata}')


def main(args=None):
    # Our own signal handling: on SIGINT/SIGTERM the executor keeps taking what already arrived
    # before the files are closed, which rclpy's handler (shutting the context down) would prevent.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        node = RecordNode()
        reject_undeclared_parameters(node)
    except (ParameterException, ValueError, FileExistsError, FileNotFoundError) as e:
        get_logger('morec_record').fatal(f'cannot start: {e}')
        rclpy.try_shutdown()
        return 1
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
        node.last_message = time.monotonic()
        while time.monotonic() - node.last_message < DRAIN_QUIET_S:
            executor.spin_once(timeout_sec=0.05)
    finally:
        node.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
