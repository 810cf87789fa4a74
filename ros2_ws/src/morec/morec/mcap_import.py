"""Recordings into datasets: MCAP files with ROS 2 (CDR) messages, as `morec_record` or `ros2 bag record -s mcap`
write them, into the transitions (s, a, r, s') of `morec.dataset`.

A recording holds sensor_msgs/JointState on a state topic and std_msgs/Float64MultiArray commands.
The task spec maps joints to observations and gives the reward and termination. Pairing follows the
monitors' rule (morec_ros.common.Transitions), over the whole recording at once: messages are ordered
by when they were sent (publish time, else log time); a command acts on the latest state sent before
it, the latest command of a state is the one the robot applied, and the next state completes the
transition when its header stamp is one control period later. Where it is not the episode ends:
the same or an earlier stamp is a reset (the sim repeats the stamp when it restarts an episode; a
restarted robot's clock jumps back), more than 1.5 periods is a gap of lost states. States less
than half a period apart, or with non-finite values, are inconsistent with the task: an error that
names their time range, or skipped and reported on request. Commands the robot would refuse (wrong
length, non-finite) are left out, as the sim node and forward_command_controller drop them; values
beyond the actuator limits are clipped, as the robot applies them.

A task spec with a `base:` section (a robot without its floating-base joints on /joint_states) takes
those observation entries from nav_msgs/Odometry on the spec's topic: each state uses the odometry
whose header stamp is nearest its own; a state with none within half a control period has no
observation and counts as inconsistent.

Reading needs `mcap` and `mcap-ros2-support` only (their decoder builds plain Python objects from the
schemas in the file): no rclpy, no message packages.
"""

from __future__ import annotations

import re
import struct
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from .dataset import Dataset, DatasetError
from .task_spec import BaseState, TaskSpec

STATE_TOPIC = "/joint_states"
COMMAND_TOPIC = "/effort_controller/commands"
MAGIC = b"\x89MCAP0\r\n"
RANGES_SHOWN = 3  # time ranges an error or summary lists before "and N more"


class RecordingError(DatasetError):
    """A recording that cannot be read or turned into a dataset; the message says where and why."""


@dataclass
class Message:
    topic: str
    log_time: int  # ns, when the recorder received it
    sent: int  # ns, the publisher's send time (the log time where the writer stored none)
    msg: object  # the decoded message


@dataclass
class Recording:
    messages: list[Message]
    files: list[str]
    metadata: dict[str, str]  # the `morec` metadata record of morec_record's files
    truncated: list[str]  # files that end without their summary, with how many messages were read


def recording_files(path: str | Path) -> list[Path]:
    """The MCAP files of a recording: the file itself, or a rosbag2 folder's in order (metadata.yaml's
    list, else the *.mcap files by their split index: a recorder killed before writing metadata.yaml)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"recording {path} not found")
    if path.is_file():
        return [path]
    meta = path / "metadata.yaml"
    if meta.is_file():
        try:
            info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
            files = [path / Path(p).name for p in info["relative_file_paths"]]
        except (yaml.YAMLError, KeyError, TypeError) as err:
            raise RecordingError(f"{meta}: not a rosbag2 metadata file ({err})") from None
        if info.get("storage_identifier") != "mcap":
            raise RecordingError(f"{path}: rosbag2 storage {info.get('storage_identifier')!r}, only mcap is read")
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise RecordingError(f"{path}: files listed in metadata.yaml are missing: {missing}")
        return files
    files = sorted(path.glob("*.mcap"),
                   key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])
    if not files:
        raise RecordingError(f"{path}: a folder with no .mcap files")
    return files


def read_recording(path: str | Path, topics: set[str], recover: bool = False) -> Recording:
    """The messages on `topics` of every file of a recording, decoded, in file order.

    A file that ends early (no summary: its recorder was killed, or a copy was cut short) is an
    error unless `recover`, which keeps what it holds up to its last complete chunk.
    """
    from mcap.exceptions import McapError
    from mcap.records import Channel, Metadata, Schema
    from mcap.records import Message as McapMessage
    from mcap.stream_reader import StreamReader
    from mcap_ros2.decoder import DecoderFactory

    factory = DecoderFactory()
    recording = Recording([], [], {}, [])
    for file in recording_files(path):
        recording.files.append(str(file))
        with open(file, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise RecordingError(f"{file} is not an MCAP file (it does not start with the MCAP magic bytes)")
            f.seek(0)
            schemas, channels, decoders = {}, {}, {}
            count = 0
            try:
                for record in StreamReader(f, validate_crcs=True).records:
                    if isinstance(record, Schema):
                        schemas[record.id] = record
                    elif isinstance(record, Channel):
                        channels[record.id] = record
                    elif isinstance(record, Metadata) and record.name == "morec":
                        recording.metadata.update(record.metadata)
                    elif isinstance(record, McapMessage):
                        channel = channels.get(record.channel_id)
                        if channel is None:
                            raise RecordingError(f"{file}: a message on channel {record.channel_id}, which no "
                                                 f"record defines: the file is corrupt")
                        if channel.topic not in topics:
                            continue
                        decode = decoders.get(channel.id)
                        if decode is None:
                            decode = decoders[channel.id] = _decoder(factory, channel, schemas.get(channel.schema_id),
                                                                     file)
                        recording.messages.append(
                            Message(channel.topic, record.log_time, record.publish_time or record.log_time,
                                    decode(record.data)))
                        count += 1
            except (McapError, struct.error) as err:
                if not _is_truncation(err):
                    raise RecordingError(f"{file}: corrupt after {count} messages ({err})") from None
                if not recover:
                    raise RecordingError(
                        f"{file} is truncated: it ends after {count} readable messages without its summary "
                        f"(a recorder that was killed?); --recover imports what it holds") from None
                recording.truncated.append(f"{file} ({count} messages)")
            except RecordingError:
                raise
            except Exception as err:  # a failed CRC, zstd frame or CDR decode: the bytes are damaged
                raise RecordingError(f"{file}: corrupt after {count} messages "
                                     f"({type(err).__name__}: {err})") from None
    return recording


def _is_truncation(err: Exception) -> bool:
    from mcap.exceptions import EndOfFile

    # The stream ran out mid-record: the reader raises EndOfFile, or struct.error on a short length field.
    return isinstance(err, (EndOfFile, struct.error))


def _decoder(factory, channel, schema, file):
    decoder = factory.decoder_for(channel.message_encoding, schema) if schema is not None else None
    if decoder is None:
        raise RecordingError(f"{file}: topic {channel.topic} is {channel.message_encoding!r} with schema "
                             f"{getattr(schema, 'encoding', None)!r}; only ROS 2 messages (cdr, ros2msg) are read")
    return decoder


@dataclass
class ImportReport:
    """What the pairing found; stored in the dataset's metadata under "import"."""

    states: int = 0
    commands: int = 0
    transitions: int = 0
    episodes: int = 0
    resets: int = 0
    gaps: list[list[float]] = field(default_factory=list)  # [start, end] s into the recording
    states_without_command: int = 0
    commands_refused: int = 0  # wrong length or non-finite: the robot drops them
    commands_clipped: int = 0
    commands_before_first_state: int = 0
    skipped: list[dict] = field(default_factory=list)  # inconsistent segments left out (skip_inconsistent)
    truncated_files: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.transitions} transitions in {self.episodes} episodes from {self.states} states and "
                 f"{self.commands} commands", f"{self.resets} resets", f"{len(self.gaps)} gaps"
                 + (f" ({_ranges(self.gaps)})" if self.gaps else "")]
        for count, what in ((self.states_without_command, "states without a command"),
                            (self.commands_refused, "commands refused (wrong length or non-finite)"),
                            (self.commands_clipped, "commands clipped to the actuator limits"),
                            (self.commands_before_first_state, "commands before the first state")):
            if count:
                parts.append(f"{count} {what}")
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)} inconsistent segments "
                         f"({_ranges([s['range'] for s in self.skipped])})")
        if self.truncated_files:
            parts.append(f"recovered from truncated {', '.join(self.truncated_files)}")
        return "; ".join(parts)


def _ranges(ranges: list) -> str:
    shown = ", ".join(f"{a:.3f}-{b:.3f} s" for a, b in ranges[:RANGES_SHOWN])
    return shown + (f" and {len(ranges) - RANGES_SHOWN} more" if len(ranges) > RANGES_SHOWN else "")


def recording_to_dataset(path: str | Path, task: TaskSpec, state_topic: str = STATE_TOPIC,
                         command_topic: str = COMMAND_TOPIC, recover: bool = False,
                         skip_inconsistent: bool = False, odometry_topic: str | None = None
                         ) -> tuple[Dataset, ImportReport]:
    """The transitions of a recording (an .mcap file or a rosbag2 folder of them) as a Dataset.

    `odometry_topic` (default: the spec's base topic) is read only for a spec with a `base:` section."""
    odometry_topic = (odometry_topic or task.base.topic) if task.base else None
    topics = {state_topic, command_topic} | ({odometry_topic} if odometry_topic else set())
    recording = read_recording(path, topics, recover)
    states = [m for m in recording.messages if m.topic == state_topic]
    commands = [m for m in recording.messages if m.topic == command_topic]
    odometry = [m for m in recording.messages if m.topic == odometry_topic]
    wanted = [(state_topic, states), (command_topic, commands)]
    wanted += [(odometry_topic, odometry)] if odometry_topic else []
    missing = [t for t, ms in wanted if not ms]
    if missing:
        raise RecordingError(f"{path}: no messages on {' and '.join(missing)} (name the topics with "
                             f"--state-topic / --command-topic; odometry: the task spec's base.topic)")
    origin = min(m.log_time for m in recording.messages)
    report = ImportReport(states=len(states), commands=len(commands), truncated_files=recording.truncated)

    states.sort(key=lambda m: m.sent)
    state_sent = np.array([m.sent for m in states], dtype=np.int64)
    state_time = (np.array([m.log_time for m in states], dtype=np.int64) - origin) / 1e9
    stamps = np.array([_stamp(m) for m in states], dtype=np.int64)
    bases = _nearest_odometry(odometry, stamps, task.control_period) if odometry_topic else [None] * len(states)
    obs = np.stack([_observation(task, m, base, origin, path) for m, base in zip(states, bases)])

    # The latest accepted command sent after each state (and before the next).
    actions = np.zeros((len(states), task.action_dim))
    applied = np.zeros(len(states), dtype=bool)
    for m in sorted(commands, key=lambda m: m.sent):
        values = np.asarray(m.msg.data, dtype=np.float64)
        if values.shape != (task.action_dim,) or not np.all(np.isfinite(values)):
            report.commands_refused += 1
            continue
        i = int(np.searchsorted(state_sent, m.sent, side="left")) - 1
        if i < 0:
            report.commands_before_first_state += 1
            continue
        clipped = np.clip(values, task.action_low, task.action_high)
        report.commands_clipped += bool(np.any(clipped != values))
        actions[i], applied[i] = clipped, True
    if report.commands_refused == len(commands):
        lengths = sorted({len(m.msg.data) for m in commands})
        raise RecordingError(f"{path}: none of the {len(commands)} commands on {command_topic} fits task "
                             f"{task.name!r} ({task.action_dim} finite values; they have {lengths}): wrong --task?")

    # Each state with a command against the next one: a transition, or why not.
    period = round(task.control_period * 1e9)
    step = np.diff(stamps)
    has_next = applied[:-1]
    ok = has_next & (np.abs(step - period) <= 0.5 * period)
    reset = has_next & (step <= 0)
    gap = has_next & (step > 1.5 * period)
    finite = np.all(np.isfinite(obs), axis=1)
    bad = has_next & ((step > 0) & (step < 0.5 * period) | ~finite[:-1] | ~finite[1:])
    ok &= ~bad
    report.resets = int(reset.sum())
    report.states_without_command = int((~applied[:-1]).sum())  # the last state has no next one anyway
    report.gaps = [[float(state_time[i]), float(state_time[i + 1])] for i in np.flatnonzero(gap & ~bad)]
    segments = _segments(np.flatnonzero(bad), state_time)
    if segments and not skip_inconsistent:
        raise RecordingError(
            f"{path}: {len(segments)} inconsistent segments (states less than half the task's control period "
            f"{task.control_period} s apart, non-finite, or without odometry within half a period), "
            f"at {_ranges(segments)} into the recording: "
            f"wrong --task, or a robot publishing faster than the task's period? --skip-inconsistent leaves them out")
    report.skipped = [{"range": s, "reason": "states closer than half a control period, non-finite or "
                                            "without odometry"}
                      for s in segments]

    index = np.flatnonzero(ok)
    if not len(index):
        raise RecordingError(f"{path}: no transition one control period ({task.control_period} s) long: "
                             f"{report.summary()}")
    next_obs = obs[index + 1]
    terminals = task.is_terminal(next_obs)
    # An episode goes on while the next transition starts from this one's next state.
    ends = np.append(index[1:] != index[:-1] + 1, True)
    data = Dataset(observations=obs[index], actions=actions[index],
                   rewards=task.reward(obs[index], actions[index], next_obs), next_observations=next_obs,
                   terminals=terminals, timeouts=ends & ~terminals,
                   metadata={"env_id": task.env_id, "task": task.name, "policy": "recording",
                             "source": str(path), "files": recording.files, "state_topic": state_topic,
                             "command_topic": command_topic, "odometry_topic": odometry_topic,
                             "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
    report.transitions = len(data)
    report.episodes = len(data.episode_ends())
    data.metadata["import"] = asdict(report)
    return data, report


def _stamp(m: Message) -> int:
    return m.msg.header.stamp.sec * 1_000_000_000 + m.msg.header.stamp.nanosec


def _nearest_odometry(odometry: list[Message], stamps: np.ndarray, period: float) -> list[BaseState | None]:
    """For each state stamp, the base state of the odometry stamped nearest it; None where that is more than
    half a control period away."""
    odometry = sorted(odometry, key=_stamp)
    odom_stamps = np.array([_stamp(m) for m in odometry], dtype=np.int64)
    insert = np.searchsorted(odom_stamps, stamps)
    before, after = np.clip(insert - 1, 0, len(odometry) - 1), np.clip(insert, 0, len(odometry) - 1)
    nearest = np.where(np.abs(odom_stamps[before] - stamps) <= np.abs(odom_stamps[after] - stamps), before, after)
    close = np.abs(odom_stamps[nearest] - stamps) <= 0.5 * period * 1e9
    return [BaseState.from_odometry(odometry[i].msg) if ok else None for i, ok in zip(nearest, close)]


def _observation(task: TaskSpec, m: Message, base: BaseState | None, origin: int, path) -> np.ndarray:
    if task.base is not None and base is None:
        return np.full(task.obs_dim, np.nan)  # no odometry near it: an inconsistent state
    try:
        return task.observation_from_joint_state(m.msg.name, m.msg.position, m.msg.velocity, base)
    except ValueError as err:
        raise RecordingError(f"{path}: the state at {(m.log_time - origin) / 1e9:.3f} s into the recording: "
                             f"{err}") from None


def _segments(indices: np.ndarray, times: np.ndarray) -> list[list[float]]:
    """Runs of consecutive state indices as [start, end] times (end: the state after the run's last)."""
    runs = np.split(indices, np.flatnonzero(np.diff(indices) > 1) + 1) if len(indices) else []
    return [[float(times[r[0]]), float(times[min(r[-1] + 1, len(times) - 1)])] for r in runs]
