"""`morec dataset from-mcap` on recordings written here with mcap-ros2-support (as any rosbag2 MCAP writer
would): pairing by send time and header stamps, episodes split at resets and gaps, inconsistent segments,
and files that are not MCAP, truncated or corrupt."""

import subprocess
import sys

import numpy as np
import pytest
import yaml
from mcap_ros2.writer import Writer

from morec.cli import main
from morec.dataset import Dataset
from morec.mcap_import import RecordingError, read_recording, recording_to_dataset
from morec.task_spec import load_task_spec, sim_dir
from morec_ros.bag_writer import message_definition

TASK = load_task_spec("inverted_pendulum")
P = 40_000_000  # the task's control period in ns
T0 = 1_700_000_000_000_000_000  # wall clock of the first state
STATE, COMMAND = "/joint_states", "/effort_controller/commands"


def state(i, stamp, hinge=0.01, names=("hinge", "slider")):
    """State i of a recording: sent at T0 + i P, stamped `stamp` periods;
    obs = [slider, hinge, vs, vh] = [i, hinge, 2i, 3i]."""
    ns = round(stamp * P)
    msg = {"header": {"stamp": {"sec": ns // 10**9, "nanosec": ns % 10**9}, "frame_id": ""}, "name": list(names),
           "position": [hinge, float(i)], "velocity": [3.0 * i, 2.0 * i], "effort": []}
    return T0 + round(i * P), STATE, msg


def command(i, value, after_ms=1):
    """A command sent `after_ms` after state i."""
    return T0 + round(i * P + after_ms * 1e6), COMMAND, {"layout": {"dim": [], "data_offset": 0}, "data": list(value)}


def write(path, messages, chunk_size=1 << 20):
    with open(path, "wb") as f:
        writer = Writer(f, chunk_size=chunk_size)
        schemas = {STATE: writer.register_msgdef("sensor_msgs/msg/JointState",
                                                 message_definition("sensor_msgs/msg/JointState")),
                   COMMAND: writer.register_msgdef("std_msgs/msg/Float64MultiArray",
                                                   message_definition("std_msgs/msg/Float64MultiArray"))}
        for sent, topic, msg in sorted(messages, key=lambda m: m[0]):
            writer.write_message(topic, schemas[topic], msg, log_time=sent + 500_000, publish_time=sent)
        writer.finish()
    return path


def episodes_recording():
    """Three episodes: 5 transitions ending in a fall (hinge 0.3), a reset (stamp repeated), 3 transitions, a gap
    of two lost states, 2 transitions and a last state nobody answered."""
    messages = []
    for i in range(6):
        messages.append(state(i, i, hinge=0.3 if i == 5 else 0.01))
    for i in range(6, 10):
        messages.append(state(i, i - 1))  # the reset state repeats stamp 5
    for i in range(10, 13):
        messages.append(state(i, i + 1))  # stamps 11..13: 9 -> 11 skips two periods
    for i in range(12):
        messages.append(command(i, [0.1 * i]))
    messages.append(command(2, [5.0], after_ms=2))  # a later command for state 2 wins, clipped to 3
    messages.append(command(7, [1.0, 2.0], after_ms=0.5))  # two values for one actuator: refused
    messages.append(command(8, [float("nan")], after_ms=3))  # refused; command(8, [0.8]) applies
    return messages


def test_transitions_pair_by_time_and_episodes_split_at_resets_and_gaps(tmp_path):
    data, report = recording_to_dataset(write(tmp_path / "run.mcap", episodes_recording()), TASK)
    first = [0, 1, 2, 3, 4, 6, 7, 8, 10, 11]  # the states each transition starts from
    obs = lambda i: [i, 0.3 if i == 5 else 0.01, 2 * i, 3 * i]  # noqa: E731
    np.testing.assert_allclose(data.observations, [obs(i) for i in first], rtol=1e-6)
    np.testing.assert_allclose(data.next_observations, [obs(i + 1) for i in first], rtol=1e-6)
    np.testing.assert_allclose(data.actions[:, 0], [0, 0.1, 3.0, 0.3, 0.4, 0.6, 0.7, 0.8, 1.0, 1.1], rtol=1e-6)
    assert data.terminals.tolist() == [False] * 4 + [True] + [False] * 5  # the fall
    assert data.timeouts.tolist() == [False] * 7 + [True, False, True]  # the gap, the end
    np.testing.assert_array_equal(data.rewards, TASK.reward(data.observations, data.actions, data.next_observations))
    assert data.rewards.tolist() == [1, 1, 1, 1, 0, 1, 1, 1, 1, 1]
    assert (report.transitions, report.episodes, report.resets, len(report.gaps)) == (10, 3, 1, 1)
    assert (report.commands_refused, report.commands_clipped, report.states_without_command) == (2, 1, 0)
    assert report.gaps == [pytest.approx([9 * 0.04, 10 * 0.04])]  # seconds into the recording
    assert data.metadata["env_id"] == "InvertedPendulum-v5" and data.metadata["import"]["transitions"] == 10


def test_a_rosbag2_folder_is_read_in_the_order_its_metadata_lists(tmp_path):
    messages = sorted(episodes_recording(), key=lambda m: m[0])
    bag = tmp_path / "bag"
    bag.mkdir()
    write(bag / "bag_1.mcap", messages[len(messages) // 2:])
    write(bag / "bag_0.mcap", messages[: len(messages) // 2])
    whole, _ = recording_to_dataset(write(tmp_path / "whole.mcap", messages), TASK)
    split, _ = recording_to_dataset(bag, TASK)  # no metadata.yaml (a killed recorder's folder): by split index
    np.testing.assert_array_equal(split.observations, whole.observations)
    (bag / "metadata.yaml").write_text(yaml.safe_dump({"rosbag2_bagfile_information": {
        "version": 9, "storage_identifier": "mcap", "relative_file_paths": ["bag_0.mcap"]}}))
    assert read_recording(bag, {STATE}).files == [str(bag / "bag_0.mcap")]


def test_states_faster_than_the_control_period_are_an_error_naming_their_time(tmp_path):
    sent = [0, 1, 2, 3, 4, 4.25, 4.5, 4.75, 5, 6, 7]  # four states 10 ms apart, then the period again
    messages = [state(i, i) for i in sent] + [command(i, [0.0]) for i in sent]
    path = write(tmp_path / "fast.mcap", messages)
    with pytest.raises(RecordingError, match=r"1 inconsistent segments .* at 0\.160-0\.200 s into the recording"):
        recording_to_dataset(path, TASK)
    data, report = recording_to_dataset(path, TASK, skip_inconsistent=True)
    assert [s["range"] for s in report.skipped] == [pytest.approx([0.16, 0.2])]
    assert report.transitions == len(data) == 6 and report.episodes == 2


def test_a_recording_of_another_robot_is_refused_naming_what_is_missing(tmp_path):
    path = write(tmp_path / "other.mcap", [state(i, i, names=("hip", "slider")) for i in range(3)]
                 + [command(0, [0.0])])
    with pytest.raises(RecordingError, match=r"at 0\.000 s into the recording: JointState lacks joints \['hinge'\]"):
        recording_to_dataset(path, TASK)
    path = write(tmp_path / "wide.mcap", [state(i, i) for i in range(3)] + [command(i, [0.0] * 6) for i in range(2)])
    with pytest.raises(RecordingError, match=r"none of the 2 commands .* \(1 finite values; they have \[6\]\)"):
        recording_to_dataset(path, TASK)
    with pytest.raises(RecordingError, match="no messages on /cmd"):
        recording_to_dataset(path, TASK, command_topic="/cmd")


def test_a_truncated_file_is_refused_unless_recovered(tmp_path):
    path = write(tmp_path / "cut.mcap", episodes_recording(), chunk_size=600)
    whole, _ = recording_to_dataset(path, TASK)
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.3)])
    with pytest.raises(RecordingError,
                       match=r"cut\.mcap is truncated: it ends after \d+ readable messages .*--recover"):
        recording_to_dataset(path, TASK)
    part, report = recording_to_dataset(path, TASK, recover=True)
    assert 0 < len(part) < len(whole) and report.truncated_files
    np.testing.assert_array_equal(part.observations, whole.observations[: len(part)])


def test_a_corrupt_file_is_refused(tmp_path):
    path = write(tmp_path / "bad.mcap", episodes_recording(), chunk_size=600)
    data = bytearray(path.read_bytes())
    middle = len(data) // 3
    data[middle:middle + 16] = bytes(16)
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match=r"bad\.mcap: corrupt after \d+ messages"):
        recording_to_dataset(path, TASK, recover=True)


def test_the_cli_writes_the_dataset_and_rejects_a_non_mcap_file_in_one_line(tmp_path, capsys):
    path = write(tmp_path / "run.mcap", episodes_recording())
    out = tmp_path / "run.npz"
    assert main(["dataset", "from-mcap", str(path), "--task", "inverted_pendulum", "--out", str(out)]) == 0
    assert "10 transitions in 3 episodes" in capsys.readouterr().out
    assert len(Dataset.load(out)) == 10
    not_mcap = tmp_path / "notes.mcap"
    not_mcap.write_text("hello\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["dataset", "from-mcap", str(not_mcap), "--task", "inverted_pendulum", "--out", str(out)])
    assert str(exit_info.value) == (f"morec dataset: error: {not_mcap} is not an MCAP file "
                                    f"(it does not start with the MCAP magic bytes)")
    with pytest.raises(SystemExit, match="does not name its task: pass --task"):
        main(["dataset", "from-mcap", str(path), "--out", str(out)])


def test_reading_needs_no_rclpy(tmp_path):
    path = write(tmp_path / "run.mcap", episodes_recording())
    code = ("import sys; from morec.mcap_import import recording_to_dataset; "
            "from morec.task_spec import load_task_spec;"
            f"d, _ = recording_to_dataset({str(path)!r}, load_task_spec('inverted_pendulum')); assert len(d) == 10;"
            "ros = sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sensor_msgs', 'std_msgs'));"
            "assert not ros, ros")
    subprocess.run([sys.executable, "-c", code], check=True)


def vector(v):
    return dict(zip("xyz", map(float, v)))


def simulated_cheetah_recordings(tmp_path, steps=40, drop_odometry=()):
    """One simulated HalfCheetah run written twice: all joints on /joint_states, and the legs only with the
    base on /odom (as sim/robots/halfcheetah_odom.yaml reads it). Odometry of the states in `drop_odometry`
    is left out."""
    from morec.simulator import SimulatedRobot

    odom_spec = load_task_spec(sim_dir() / "robots" / "halfcheetah_odom.yaml")
    robot = SimulatedRobot(odom_spec, odom_spec.variant("nominal"), seed=5)
    legs = [odom_spec.joints.index(j) for j in odom_spec.state_joints]
    period = round(odom_spec.control_period * 1e9)
    actions = np.random.default_rng(6).uniform(-1, 1, size=(steps, odom_spec.action_dim))
    all_joints, legs_only = [], []
    for i in range(steps + 1):
        sent, ns = T0 + i * period, i * period
        header = {"stamp": {"sec": ns // 10**9, "nanosec": ns % 10**9}, "frame_id": ""}
        position, velocity, effort = robot.joint_state()
        base = robot.base_state()

        def joint_state(index):
            return {"header": header, "name": [odom_spec.joints[k] for k in index],
                    "position": position[index].tolist(), "velocity": velocity[index].tolist(),
                    "effort": effort[index].tolist()}

        all_joints.append((sent, STATE, joint_state(list(range(len(odom_spec.joints))))))
        legs_only.append((sent, STATE, joint_state(legs)))
        if i not in drop_odometry:
            x, y, z, w = base.orientation
            legs_only.append((sent - 1000, "/odom", {
                "header": {**header, "frame_id": "odom"}, "child_frame_id": "base_link",
                "pose": {"pose": {"position": vector(base.position), "orientation": {"x": x, "y": y, "z": z, "w": w}},
                         "covariance": [0.0] * 36},
                "twist": {"twist": {"linear": vector(base.linear), "angular": vector(base.angular)},
                          "covariance": [0.0] * 36}}))
        if i < steps:
            for recording in (all_joints, legs_only):
                recording.append((sent + 1_000_000, COMMAND, {"layout": {"dim": [], "data_offset": 0},
                                                              "data": actions[i].tolist()}))
            robot.step(actions[i])
    types = {STATE: "sensor_msgs/msg/JointState", COMMAND: "std_msgs/msg/Float64MultiArray",
             "/odom": "nav_msgs/msg/Odometry"}
    paths = []
    for name, messages in (("all_joints.mcap", all_joints), ("odometry.mcap", legs_only)):
        with open(tmp_path / name, "wb") as f:
            writer = Writer(f)
            schemas = {topic: writer.register_msgdef(kind, message_definition(kind)) for topic, kind in types.items()}
            for sent, topic, msg in sorted(messages, key=lambda m: m[0]):
                writer.write_message(topic, schemas[topic], msg, log_time=sent + 500_000, publish_time=sent)
            writer.finish()
        paths.append(tmp_path / name)
    return odom_spec, paths


def test_base_state_from_odometry_imports_as_the_all_joints_recording(tmp_path):
    odom_spec, (all_joints, odometry) = simulated_cheetah_recordings(tmp_path)
    expected, _ = recording_to_dataset(all_joints, load_task_spec("halfcheetah"))
    got, report = recording_to_dataset(odometry, odom_spec)
    assert report.transitions == len(expected) == 40 and got.metadata["odometry_topic"] == "/odom"
    for key in ("observations", "actions", "rewards", "next_observations"):
        np.testing.assert_allclose(getattr(got, key), getattr(expected, key), rtol=0, atol=1e-6, err_msg=key)
    assert np.abs(expected.observations[:, 1]).max() > 0.05  # the torso pitched: the pitch entry is exercised

    with pytest.raises(RecordingError, match=r"no messages on /odom"):
        recording_to_dataset(all_joints, odom_spec)


def test_states_without_odometry_are_inconsistent(tmp_path):
    odom_spec, (_, odometry) = simulated_cheetah_recordings(tmp_path, steps=10, drop_odometry={4})
    with pytest.raises(RecordingError, match=r"1 inconsistent segments .*without odometry"):
        recording_to_dataset(odometry, odom_spec)
    data, report = recording_to_dataset(odometry, odom_spec, skip_inconsistent=True)
    assert report.transitions == 8 and len(report.skipped) == 1  # the transitions into and out of state 4
