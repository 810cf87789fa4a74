"""morec_record over DDS: every message of a steady stream and of a burst ends up in the files, split files that an
independent rosbag2 reader (rosbags) reads, a clean close on SIGTERM, a SIGKILLed recorder's files readable up
to its last flushed chunk, and `morec up record` starting it."""

import signal
import subprocess
import sys
import threading
import time

import pytest

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from rosbags.rosbag2 import Reader  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402
from rosproc import COMMAND_TOPIC, MULTIPROCESS, Client, NodeProcess, fresh_domain, recording, status_of  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from morec.mcap_import import RecordingError, read_recording  # noqa: E402
from morec_ros.record_node import SequenceGaps  # noqa: E402

pytestmark = MULTIPROCESS
# What the stack's publishers use (ros2_control's too): reliable, keep the last 10.
PUBLISHER_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(autouse=True)
def localhost_only(monkeypatch):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def joint_state(i):
    msg = JointState(name=["slider", "hinge"], position=[float(i), 0.0], velocity=[0.0, 0.0])
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(i * 20_000_000, 10**9)
    return msg


def start(tmp_path, domain, processes, **params):
    """A recorder into tmp_path/rec and a client whose two publishers it has matched."""
    recorder = NodeProcess("record_node", {"output": str(tmp_path / "rec"), "task": "inverted_pendulum", **params},
                           domain, tmp_path)
    processes.append(recorder)
    client = Client(domain)
    client.watched.append(recorder)
    states = client.node.create_publisher(JointState, "/joint_states", PUBLISHER_QOS)
    commands = client.node.create_publisher(Float64MultiArray, COMMAND_TOPIC, PUBLISHER_QOS)
    assert client.spin_until(lambda: recording(recorder, "/joint_states", COMMAND_TOPIC), 30.0), recorder.output()
    return recorder, client, states, commands


def publish_at(publisher, messages, rate):
    start = time.monotonic()
    for i, msg in enumerate(messages):
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        publisher.publish(msg)


def test_sequence_gaps_count_what_a_lone_publisher_sent_and_the_recorder_never_got():
    gaps = SequenceGaps()
    gaps.received("/a", 1)
    gaps.received("/a", 3)  # before the match is known: not counted
    gaps.matched("/a", 1)
    for sequence in (4, 5, 8, 9):  # 6 and 7 lost
        gaps.received("/a", sequence)
    gaps.matched("/a", 2)  # two publishers: their numbers interleave
    for sequence in (1, 10, 2, 11):
        gaps.received("/a", sequence)
    gaps.matched("/a", 1)  # one left: a new run of numbers
    for sequence in (30, 31, 33):  # 32 lost
        gaps.received("/a", sequence)
    gaps.matched("/b", 1)
    gaps.received("/b", 1)
    gaps.received("/b", 2)
    assert gaps.lost == {"/a": 3}


def test_every_message_of_a_stream_and_a_burst_is_recorded_in_split_files(tmp_path, processes):
    recorder, client, states, commands = start(tmp_path, fresh_domain(), processes, split_duration=3.0,
                                               diagnostics_period=0.2)
    diagnostics = client.diagnostics()
    try:
        publish_at(states, [joint_state(i) for i in range(500)], rate=50.0)  # 10 s at 50 Hz
        for i in range(500):  # then a burst, as fast as Python publishes
            commands.publish(Float64MultiArray(data=[float(i)]))
        def status():
            return status_of(diagnostics, "morec_record: recorder") or (None, "", {})

        assert client.spin_until(lambda: status()[2].get(f"written {COMMAND_TOPIC}") == "500", 10.0), status()
        level, _, values = status()
        assert level == DiagnosticStatus.OK and values["written /joint_states"] == "500", status()
        assert not any(key.startswith("lost") for key in values), status()
    finally:
        client.close()
    assert recorder.stop(signal.SIGTERM) == 0, recorder.output()
    assert "/joint_states 500" in recorder.output() and f"{COMMAND_TOPIC} 500" in recorder.output(), recorder.output()

    folder = tmp_path / "rec"
    typestore = get_typestore(Stores.ROS2_JAZZY)
    received = {"/joint_states": [], COMMAND_TOPIC: []}
    assert len(list(folder.glob("*.mcap"))) >= 3  # 10 s in files of 3 s
    with Reader(folder) as bag:  # rosbags: metadata.yaml, the file list, schemas and CDR, read independently
        # and the recorder's own status on /diagnostics: the recording holds what it lost
        counts = {c.topic: c.msgcount for c in bag.connections}
        assert counts.pop("/diagnostics") > 0 and counts == {"/joint_states": 500, COMMAND_TOPIC: 500}
        assert all(c.msgdef.data.startswith("#") for c in bag.connections)  # the .msg text travels with the file
        for connection, _, raw in bag.messages(connections=[c for c in bag.connections if c.topic in received]):
            msg = typestore.deserialize_cdr(raw, connection.msgtype)
            received[connection.topic].append(msg.position[0] if connection.topic == "/joint_states" else msg.data[0])
    assert received["/joint_states"] == list(range(500))
    assert sorted(received[COMMAND_TOPIC]) == list(range(500))
    assert read_recording(folder, {"/joint_states"}).metadata == {
        "task": "inverted_pendulum", "command_topic": COMMAND_TOPIC, "recorder": "morec_record"}


def test_a_recorder_stops_cleanly_while_the_robot_streams_on(tmp_path, processes):
    """A stop request ends the recording within its drain limit, though states keep coming at 100 Hz."""
    recorder, client, states, _ = start(tmp_path, fresh_domain(), processes)
    streaming = threading.Thread(target=publish_at, args=(states, [joint_state(i) for i in range(600)], 100.0))
    streaming.start()
    try:
        time.sleep(1.0)
        asked = time.monotonic()
        assert recorder.stop(signal.SIGINT, timeout=10.0) == 0, recorder.output()
        assert time.monotonic() - asked < 5.0
    finally:
        streaming.join()
        client.close()
    recording = read_recording(tmp_path / "rec", {"/joint_states"})  # closed files, with their summaries
    positions = [m.msg.position[0] for m in recording.messages]
    assert positions == list(range(len(positions))) and 50 < len(positions) < 600


def test_a_killed_recorder_leaves_what_it_flushed_readable(tmp_path, processes):
    domain = fresh_domain()
    recorder, client, states, _ = start(tmp_path, domain, processes, flush_period=0.2)
    try:
        publish_at(states, [joint_state(i) for i in range(100)], rate=100.0)
        time.sleep(1.0)  # some flushes after the last message
    finally:
        client.close()
    recorder.stop(signal.SIGKILL)
    folder = tmp_path / "rec"
    assert not (folder / "metadata.yaml").exists()
    with pytest.raises(RecordingError, match=r"rec_0\.mcap is truncated: it ends after 100 readable messages"):
        read_recording(folder, {"/joint_states"})
    recording = read_recording(folder, {"/joint_states"}, recover=True)
    assert [m.msg.position[0] for m in recording.messages] == list(range(100))

    again = NodeProcess("record_node", {"output": str(folder)}, domain, tmp_path)
    processes.append(again)
    assert again.proc.wait(timeout=30) == 1
    assert "[FATAL]" in again.output() and "exists and is not empty" in again.output()
    assert "Traceback" not in again.output()


def test_morec_up_starts_the_recorder_with_the_stack_parameters(tmp_path):
    """launch/configs/record.yaml: the recorder beside a stack, writing under the working directory."""
    up = subprocess.Popen([sys.executable, "-m", "morec.cli", "up", "record", "--domain-id", str(fresh_domain())],
                          cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in up.stdout:
        lines.append(line)
        if "recording 11 topics to recordings/morec_" in line or "exited" in line:
            break
    up.send_signal(signal.SIGINT)
    lines += up.stdout.readlines()
    assert up.wait(timeout=30) == 0, "".join(lines)
    assert len(list(tmp_path.glob("recordings/morec_*/metadata.yaml"))) == 1, "".join(lines)
