"""`morec_record`: the stack's topics to MCAP with ROS 2 (CDR) encoding, in a rosbag2 folder.

Records /joint_states, /odom (the base state of task specs with a `base:` section), the command
topic, the model nodes' outputs (/morec/prediction, /morec/dynamics_reward, /morec/candidates,
/morec/plan, /morec/prediction_error, /morec/episode_return) and /diagnostics. Subscriptions are raw:
the CDR bytes DDS delivered go into the file as they are, with no deserialise/serialise per message.
They are reliable with a deep queue, so a recorder that falls behind for a moment buffers instead of dropping.
Its own status goes to /diagnostics every `diagnostics_period`: messages written and lost per topic, the
latter from gaps in a publisher's sequence numbers (a writer's history dropped what a lagging recorder had
not acknowledged yet). SIGINT or SIGTERM stops it cleanly: whatever has arrived is written, the files get
their summaries and the folder its metadata.yaml. Chunks are finished every `flush_period` seconds, which
bounds what a SIGKILL loses.
"""

import signal
import sys
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
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
from morec_ros.diagnostics import publish_diagnostics
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
# After a stop request the recorder keeps taking messages until none arrived for DRAIN_QUIET_S, at most
# DRAIN_MAX_S: a robot that streams on (states at 100 Hz, others' diagnostics) never goes quiet.
DRAIN_QUIET_S = 0.3
DRAIN_MAX_S = 2.0


class SequenceGaps:
    """Messages lost per topic, from gaps in the publication sequence numbers DDS gives each writer's samples
    (1, 2, 3, ...). Counted only while a topic has one publisher: the numbers of several interleave, and the
    message info does not say whose a number is."""

    def __init__(self):
        self.lost: dict[str, int] = {}
        self._publishers: dict[str, int] = {}
        self._last: dict[str, int] = {}

    def matched(self, topic: str, publishers: int) -> None:
        self._publishers[topic] = publishers
        self._last.pop(topic, None)  # a publisher came or went: the next number starts a new run

    def received(self, topic: str, sequence: int) -> None:
        last = self._last.get(topic)
        if self._publishers.get(topic) == 1 and last is not None and sequence > last + 1:
            self.lost[topic] = self.lost.get(topic, 0) + sequence - last - 1
        self._last[topic] = sequence


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
        self.gaps = SequenceGaps()
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        qos = QoSProfile(depth=p.queue_depth, reliability=ReliabilityPolicy.RELIABLE)
        for topic, msg_type in {**TOPICS, p.command_topic: Float64MultiArray}.items():
            self._bag.add_topic(topic, type_name(msg_type))
            # A best-effort publisher cannot serve a reliable subscription: say so rather than record nothing.
            # What a volatile subscription gets starts when it has matched a publisher: say when.
            events = SubscriptionEventCallbacks(
                incompatible_qos=lambda event, t=topic: self.get_logger().warning(
                    f'{t}: a publisher offers QoS this reliable subscription cannot match '
                    f'({event.last_policy_kind.name}); its messages are not recorded'),
                matched=lambda event, t=topic: self._matched(t, event.current_count))
            self.create_subscription(msg_type, topic, lambda data, info, t=topic: self._write(t, data, info), qos,
                                     event_callbacks=events, raw=True)
        self.create_timer(p.flush_period, self._bag.flush)
        self.diagnostics_timer = self.create_timer(p.diagnostics_period, self._publish_diagnostics)
        self.get_logger().info(f'recording {len(TOPICS) + 1} topics to {self._bag.folder}')

    def _matched(self, topic, publishers):
        self.gaps.matched(topic, publishers)
        self.get_logger().info(f'{topic}: {publishers} publisher(s)')

    def _write(self, topic, data, info):
        # Log time: when DDS received it; publish time: the publisher's source timestamp (as rosbag2 stores them).
        sequence = info.get('publication_sequence_number') or 0
        self._bag.write(topic, data, info['received_timestamp'], info['source_timestamp'], sequence)
        if sequence:
            self.gaps.received(topic, sequence)
        self.last_message = time.monotonic()

    def _summary(self) -> str:
        counts = ', '.join(f'{t} {n}' for t, n in self._bag.counts.items() if n)
        lost = ', '.join(f'{t} {n}' for t, n in self.gaps.lost.items())
        return (f'{self._bag.message_count} messages ({counts or "none"}) in {len(self._bag.files)} file(s)'
                + (f'; lost {lost}' if lost else ''))

    def _publish_diagnostics(self):
        values = {f'written {t}': n for t, n in self._bag.counts.items() if n}
        values.update({f'lost {t}': n for t, n in self.gaps.lost.items()})
        level = DiagnosticStatus.WARN if self.gaps.lost else DiagnosticStatus.OK
        publish_diagnostics(self, self._diag_pub, 'recorder', level, self._summary(), str(self._bag.folder), values)

    def close(self):
        metadata = self._bag.close()
        self.get_logger().info(f'wrote {self._summary()}; {metadata}')


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
        node.diagnostics_timer.cancel()  # its own status would keep the drain busy
        node.last_message = start = time.monotonic()
        while time.monotonic() - node.last_message < DRAIN_QUIET_S and time.monotonic() - start < DRAIN_MAX_S:
            executor.spin_once(timeout_sec=0.05)
    finally:
        node.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
