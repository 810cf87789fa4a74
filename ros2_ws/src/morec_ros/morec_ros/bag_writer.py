"""A rosbag2 folder of MCAP files: serialized (CDR) messages in, split files and metadata.yaml out.

The files follow the `ros2` MCAP profile as rosbag2's own MCAP storage writes it: one schema per
message type holding its complete `ros2msg` definition (the .msg text with every nested type's
appended, so Foxglove and PlotJuggler decode without the message packages), channels with `cdr`
encoding, log time = when the recorder received a message, publish time = when it was sent. Chunks
are zstd-compressed and finished at least every `flush()`, so a recorder killed mid-write leaves
every finished chunk readable. metadata.yaml is written on close (`ros2 bag info <folder>` needs it;
`morec dataset from-mcap` reads the files without it).
"""

from __future__ import annotations

import os
import re
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from mcap.well_known import MessageEncoding, SchemaEncoding
from mcap.writer import CompressionType, Writer

from morec.share import package_prefix

PRIMITIVES = {'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32',
              'int64', 'uint64', 'string', 'wstring'}
DELIMITER = '=' * 80


def msg_file(type_name: str) -> Path:
    """The .msg file of `pkg/msg/Type`: in share/ of the ament prefix that lists the package (a sourced
    distro or colcon install), else of this interpreter's prefix (where the ros-jazzy-* wheels put it)."""
    package, _, name = type_name.split('/')
    prefix = package_prefix(package) or Path(sysconfig.get_path('data'))
    path = prefix / 'share' / package / 'msg' / f'{name}.msg'
    if not path.is_file():
        raise FileNotFoundError(f'no message definition for {type_name} at {path}')
    return path


def message_definition(type_name: str) -> str:
    """The complete ros2msg definition of `pkg/msg/Type`, nested types depth-first, each once, as
    rosbag2 concatenates them."""
    seen = set()

    def expand(name: str) -> str:
        text = msg_file(name).read_text()
        package = name.split('/')[0]
        for dependency in _field_types(text, package):
            if dependency not in seen:
                seen.add(dependency)
                text += f'\n{DELIMITER}\nMSG: {dependency}\n' + expand(dependency)
        return text

    return expand(type_name)


def _field_types(text: str, package: str) -> list[str]:
    """The non-primitive field types of a .msg text as pkg/msg/Type, in order of appearance."""
    types = []
    for line in text.splitlines():
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        kind = re.split(r'[\s\[<]', line, maxsplit=1)[0]  # "float64[] x", "string<=8 y", "Header h"
        if kind in PRIMITIVES:
            continue
        parts = kind.split('/')
        full = f'{package}/msg/{kind}' if len(parts) == 1 else f'{parts[0]}/msg/{parts[-1]}'
        if full not in types:
            types.append(full)
    return types


@dataclass
class _File:
    path: Path
    writer: Writer
    stream: object
    channels: dict = field(default_factory=dict)  # topic -> channel id in this file
    start: int | None = None  # log time of its first message
    end: int = 0
    messages: int = 0


class BagWriter:
    """Writes messages of registered topics to <folder>/<folder name>_<i>.mcap, a new file whenever
    the current one reaches `split_bytes` or spans `split_seconds` (0: never)."""

    def __init__(self, folder: str | os.PathLike, split_bytes: int = 0, split_seconds: float = 0.0,
                 chunk_bytes: int = 1 << 20, metadata: dict[str, str] | None = None):
        self.folder = Path(folder)
        if self.folder.exists() and any(self.folder.iterdir()):
            raise FileExistsError(f'{self.folder} exists and is not empty: choose another output folder')
        self.folder.mkdir(parents=True, exist_ok=True)
        self._split_bytes = split_bytes
        self._split_ns = int(split_seconds * 1e9)
        self._chunk_bytes = chunk_bytes
        self._metadata = metadata or {}
        self._topics = {}  # topic -> (type name, schema text)
        self._counts = {}  # topic -> messages written
        self._closed_files = []  # (path, start, end, messages)
        self._file = None

    @property
    def counts(self) -> dict[str, int]:
        """Messages written per topic."""
        return dict(self._counts)

    @property
    def message_count(self) -> int:
        return sum(self._counts.values())

    @property
    def files(self) -> list[Path]:
        return [f[0] for f in self._closed_files] + ([self._file.path] if self._file else [])

    def add_topic(self, topic: str, type_name: str) -> None:
        self._topics[topic] = (type_name, message_definition(type_name))
        self._counts[topic] = 0

    def write(self, topic: str, data: bytes, log_time: int, publish_time: int, sequence: int = 0) -> None:
        file = self._file
        if file is not None and file.messages and (
                (self._split_bytes and file.stream.tell() >= self._split_bytes)
                or (self._split_ns and log_time - file.start >= self._split_ns)):
            self._finish_file()
            file = None
        if file is None:
            file = self._file = self._open_file()
        channel = file.channels.get(topic)
        if channel is None:
            type_name, definition = self._topics[topic]
            schema = file.writer.register_schema(type_name, SchemaEncoding.ROS2, definition.encode())
            channel = file.channels[topic] = file.writer.register_channel(topic, MessageEncoding.CDR, schema)
        file.writer.add_message(channel, log_time=log_time, data=data, publish_time=publish_time,
                                sequence=sequence & 0xFFFFFFFF)
        file.start = log_time if file.start is None else min(file.start, log_time)
        file.end = max(file.end, log_time)
        file.messages += 1
        self._counts[topic] += 1

    def flush(self) -> None:
        """Finish the chunk in progress and hand it to the OS: what a kill can lose ends here."""
        if self._file is not None:
            self._file.writer.flush()

    def close(self) -> Path:
        """Finish the last file and write metadata.yaml; returns its path."""
        if self._file is not None:
            self._finish_file()
        path = self.folder / 'metadata.yaml'
        path.write_text(yaml.safe_dump(self._bag_metadata(), sort_keys=False))
        return path

    def _open_file(self) -> _File:
        path = self.folder / f'{self.folder.name}_{len(self._closed_files)}.mcap'
        stream = open(path, 'wb')
        writer = Writer(stream, chunk_size=self._chunk_bytes, compression=CompressionType.ZSTD)
        writer.start(profile='ros2', library='morec_record')
        if self._metadata:
            writer.add_metadata('morec', self._metadata)
        return _File(path, writer, stream)

    def _finish_file(self) -> None:
        file, self._file = self._file, None
        file.writer.finish()
        file.stream.close()
        self._closed_files.append((file.path, file.start or 0, file.end, file.messages))

    def _bag_metadata(self) -> dict:
        """rosbag2's metadata.yaml, version 9 (Jazzy): what `ros2 bag info` and `ros2 bag play` read."""
        files = [f for f in self._closed_files if f[3]]
        start = min((f[1] for f in files), default=0)
        end = max((f[2] for f in files), default=0)
        return {'rosbag2_bagfile_information': {
            'version': 9,
            'storage_identifier': 'mcap',
            'duration': {'nanoseconds': end - start},
            'starting_time': {'nanoseconds_since_epoch': start},
            'message_count': self.message_count,
            'topics_with_message_count': [
                {'topic_metadata': {'name': topic, 'type': type_name, 'serialization_format': 'cdr',
                                    'offered_qos_profiles': [], 'type_description_hash': ''},
                 'message_count': self._counts[topic]}
                for topic, (type_name, _) in self._topics.items() if self._counts[topic]],
            'compression_format': '',
            'compression_mode': '',  # compression is per chunk, inside the MCAP files
            'relative_file_paths': [f[0].name for f in self._closed_files],
            'files': [{'path': f[0].name, 'starting_time': {'nanoseconds_since_epoch': f[1]},
                       'duration': {'nanoseconds': f[2] - f[1]}, 'message_count': f[3]}
                      for f in self._closed_files],
            'custom_data': dict(self._metadata),
            'ros_distro': os.environ.get('ROS_DISTRO', 'jazzy'),
        }}


def default_folder() -> Path:
    """recordings/morec_<date-time> in the working directory (rosbag2 names its folders alike)."""
    return Path('recordings') / time.strftime('morec_%Y_%m_%d-%H_%M_%S')
