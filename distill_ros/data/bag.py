"""rosbag2 bags through the `rosbags` library: writing what the recorder sees, and replaying a bag
into a dataset (`distill-ros bag2dataset`), in MCAP or sqlite3 storage.

Bags hold standard message types only, so `ros2 bag play`, `ros2 bag info` and Foxglove read what
this package writes, and a bag recorded on a robot workstation replays here.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from distill_ros.data import cdr
from distill_ros.data.assembler import EpisodeAssembler
from distill_ros.data.dataset import BackgroundWriter, DatasetSpec, DatasetWriter
from distill_ros.observation import COMMAND, ObsSpec, SensorMessageError, SensorMismatch
from distill_ros.paths import load_user_yaml
from distill_ros.stamps import stamp_ns

JOINT_STATE = 'sensor_msgs/msg/JointState'
IMU = 'sensor_msgs/msg/Imu'
# stream -> (default topic, message type); the defaults are the package's own topic names.
STREAMS: dict[str, tuple[str, str]] = {
    'joints': ('/joint_states', JOINT_STATE),
    'imu': ('/imu/data', IMU),
    'privileged': ('/privileged/state', JOINT_STATE),
    'teacher_action': ('/teacher/action', JOINT_STATE),
    'teacher_distribution': ('/teacher/distribution', JOINT_STATE),
    'step': ('/sim/step', JOINT_STATE),
    'episode': ('/sim/episode', JOINT_STATE),
}
NAMED = {'privileged', 'teacher_action', 'teacher_distribution', 'step'}
STORAGE = ('mcap', 'sqlite3')


class BagError(ValueError):
    """A bag cannot be used: the message names the bag, the topic and what was expected."""


def typestore():
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_KILTED)


class BagWriter:
    """Writes serialized (CDR) messages to a rosbag2 bag; `ros2 bag play` replays it."""

    def __init__(self, path: str | Path, storage: str = 'mcap'):
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGE:
            raise BagError(f'{path}: unknown storage {storage!r}; expected one of {STORAGE}')
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f'{self.path} already exists; rosbag2 bags are written to a new folder')
        plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
        self.writer = Writer(self.path, version=9, storage_plugin=plugin)
        self.writer.open()
        self.store = typestore()
        self.connections: dict[str, Any] = {}
        self.count = 0

    def write(self, topic: str, msgtype: str, timestamp_ns: int, cdr: bytes) -> None:
        connection = self.connections.get(topic)
        if connection is None:
            connection = self.writer.add_connection(topic, msgtype, typestore=self.store)
            self.connections[topic] = connection
        self.writer.write(connection, timestamp_ns, cdr)
        self.count += 1

    def close(self) -> None:
        self.writer.close()  # writes metadata.yaml


def topic_map(path: str | Path | None) -> dict[str, str]:
    """stream -> topic, from a YAML `topics:` mapping over the defaults."""
    topics = {stream: topic for stream, (topic, _) in STREAMS.items()}
    if path:
        data = load_user_yaml(path, 'topics YAML')
        given = data.get('topics', data)
        if not isinstance(given, dict):
            raise BagError(f'{path}: topics is {given!r}; expected a mapping of streams to topic names')
        unknown = sorted(set(given) - set(STREAMS))
        if unknown:
            raise BagError(f'{path}: unknown streams {unknown}; expected some of {sorted(STREAMS)}')
        topics.update({k: str(v) for k, v in given.items()})
    return topics


def deserialize(store, raw: bytes | memoryview, typename: str):
    """CDR -> message, tolerating trailing bytes after the message; bad bytes raise `cdr.CdrError`.

    JointState and Imu take the fast path of `distill_ros.data.cdr`; other types use `rosbags`.
    rclpy's `serialize_message` (and so rosbag2 recording from it) can leave a few bytes past the
    end of the encoded message; ROS 2's own CDR readers ignore them, `rosbags`' strict check does
    not, so decode with its message definition directly.
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] not in (0, 1):
        raise cdr.CdrError(f'invalid CDR encapsulation for {typename}')
    fast = cdr.FAST.get(typename)
    if fast is not None and raw[1] == 1:
        return fast(raw)
    msgdef = store.get_msgdef(typename)
    decode = msgdef.deserialize_cdr_le if raw[1] == 1 else msgdef.deserialize_cdr_be
    try:
        message, _ = decode(memoryview(raw)[4:], 0, msgdef.cls, store)
    except Exception as exc:  # noqa: BLE001 - rosbags' decoder raises struct, index and value errors alike
        raise cdr.CdrError(f'malformed {typename} CDR ({len(raw)} bytes): {exc}') from None
    return message


def payload(stream: str, msg) -> Any:
    """What the assembler takes for a message of `stream` (rclpy or rosbags message alike)."""
    if stream in NAMED or stream == 'episode':
        return (msg.name, msg.position)
    return msg


def bag_to_dataset(bag: str | Path, out: str | Path, spec: DatasetSpec, has_imu: bool,
                   topics: dict[str, str] | None = None, pairing: str = 'exact', tolerance_ns: int = 0,
                   progress: bool = False):
    """Replay `bag` through the recorder's assembler into a dataset at `out`; returns the stats."""
    bag = Path(bag)
    topics = topics or topic_map(None)
    reader = open_bag(bag)
    try:
        needed, spec = streams_to_replay(bag, reader, spec, has_imu, topics)
        return _replay(bag, reader, needed, out, spec, has_imu, topics, pairing, tolerance_ns, progress)
    finally:
        reader.close()


def open_bag(bag: Path):
    """An open `rosbags` reader of `bag`, or a `BagError` that says what is wrong with it."""
    from rosbags.rosbag2 import Reader

    if not bag.exists():
        raise BagError(f'{bag}: no such bag')
    try:
        reader = Reader(bag)
        reader.open()
    except Exception as exc:  # rosbags raises its own errors for unreadable bags
        if bag.is_dir() and any(bag.glob('*.mcap')) and not (bag / 'metadata.yaml').is_file():
            raise BagError(f'{bag}: an MCAP bag without metadata.yaml (its recorder did not finish?); recover '
                           f'every complete message with `distill-ros bag-reindex {bag}`, then use the recovered '
                           f'bag') from None
        raise BagError(f'{bag}: cannot open as a rosbag2 bag (expected a folder with metadata.yaml and an MCAP '
                       f'or sqlite3 file): {" ".join(str(exc).split())}') from None
    return reader


def streams_to_replay(bag: Path, reader, spec: DatasetSpec, has_imu: bool,
                      topics: dict[str, str]) -> tuple[list[str], DatasetSpec]:
    """The streams a dataset of `spec` needs, each checked to be in the bag with its type, and the
    spec (without privileged state when the bag has none: one recorded on a robot). A task with a
    velocity command takes it from the privileged state's command/* fields, so needs that topic."""
    by_topic = {c.topic: c for c in reader.connections}
    needed = ['joints', 'privileged', 'step', 'episode'] + (['imu'] if has_imu else [])
    if spec.teacher:
        needed += ['teacher_action', 'teacher_distribution']
    if reader.message_count == 0:
        raise BagError(f'{bag}: the bag is empty (0 messages); expected topics '
                       f'{[topics[s] for s in needed]}')
    if topics['privileged'] not in by_topic and COMMAND in spec.sensor.names:
        raise BagError(f'{bag}: topic {topics["privileged"]} (privileged) is not in the bag; task {spec.task!r} '
                       f'reads a velocity command, which replay takes from its command/* fields (a robot bag of '
                       f'such a task cannot be replayed yet: its command came on cmd_vel)')
    if topics['privileged'] not in by_topic and spec.teacher:
        # A bag without privileged state (recorded on a robot): the recorded teacher
        # distribution is the label; the dataset's privileged layout is empty.
        needed.remove('privileged')
        spec = dataclasses.replace(spec, privileged=ObsSpec([]))
    for stream in needed:
        topic, msgtype = topics[stream], STREAMS[stream][1]
        if topic not in by_topic:
            raise BagError(f'{bag}: topic {topic} ({stream}) is not in the bag; expected {msgtype}; the bag '
                           f'has {sorted(by_topic)}')
        if by_topic[topic].msgtype != msgtype:
            raise BagError(f'{bag}: topic {topic} ({stream}) has type {by_topic[topic].msgtype}, '
                           f'expected {msgtype}')
    return needed, spec


def _replay(bag: Path, reader, needed: list[str], out: str | Path, spec: DatasetSpec, has_imu: bool,
            topics: dict[str, str], pairing: str, tolerance_ns: int, progress: bool):
    """Decode the `needed` streams of the open bag in log order into the assembler and a dataset at `out`."""
    by_topic = {c.topic: c for c in reader.connections}
    stream_of = {topics[s]: s for s in needed}
    connections = [by_topic[topics[s]] for s in needed]
    store = typestore()
    # Shards are hashed and flushed on a worker thread while decoding goes on.
    writer = BackgroundWriter(DatasetWriter(out, spec))
    assembler = EpisodeAssembler(spec, writer, pairing, tolerance_ns, has_imu, topics, strict=True)
    messages = reader.messages(connections=connections)
    if progress:
        from tqdm import tqdm
        messages = tqdm(messages, total=sum(c.msgcount for c in connections), unit='msg', desc=f'{bag.name}',
                        disable=None)
    try:
        for connection, logged_ns, raw in messages:  # noqa: B007 - named in the error
            stream = stream_of[connection.topic]
            msg = deserialize(store, raw, connection.msgtype)
            assembler.add(stream, stamp_ns(msg.header.stamp), payload(stream, msg))
        stats = assembler.finish()
    except BagError:
        raise
    except SensorMismatch as exc:
        writer.close()  # keep every episode finished before it
        raise BagError(f'{bag}: the bag does not match task {spec.task!r}: {exc}') from None
    except SensorMessageError as exc:
        writer.close()
        raise BagError(f'{bag}: malformed message: {exc}') from None
    except cdr.CdrError as exc:
        writer.close()
        raise BagError(f'{bag}: damaged or unreadable message data on {connection.topic} (recorded at '
                       f'{logged_ns} ns): {exc}') from None
    except Exception as exc:
        writer.close()  # keep every episode finished before the damage
        raise BagError(f'{bag}: damaged or unreadable message data: {exc}') from exc
    writer.close()
    return stats
