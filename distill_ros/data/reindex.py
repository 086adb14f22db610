"""Recover a rosbag2 MCAP bag whose writer never finished (a recorder killed with SIGKILL, a power
cut): no `metadata.yaml`, no summary, no footer, maybe a torn last record. What `ros2 bag reindex`
does for rosbag2 users, for `distill-ros bag-reindex`.

The MCAP file is scanned record by record from its start (every record is an opcode and a
length-prefixed body); every complete message whose channel and schema were written is kept, in
file order, and written with `rosbags` to a new, complete bag (MCAP with summary and
`metadata.yaml`) that `ros2 bag play`, `bag2dataset` and `distill --bag` read. The damaged bag is
left as it is.
"""
from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b'\x89MCAP0\r\n'
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK, OP_DATA_END = 0x01, 0x02, 0x03, 0x04, 0x05, \
    0x06, 0x0F
_U16, _U32, _U64 = struct.Struct('<H'), struct.Struct('<I'), struct.Struct('<Q')


class ReindexError(ValueError):
    """The bag cannot be recovered: the message names the file and what was found."""


@dataclass
class ReindexReport:
    source: Path
    out: Path
    messages: Counter = field(default_factory=Counter)   # topic -> messages kept
    skipped: Counter = field(default_factory=Counter)    # reason -> messages not kept
    torn_bytes: int = 0                                  # bytes of the incomplete tail dropped
    had_footer: bool = False

    @property
    def total(self) -> int:
        return sum(self.messages.values())

    def summary(self) -> str:
        tail = (f'; dropped an incomplete record of {self.torn_bytes} bytes at the end' if self.torn_bytes
                else '; the file was complete' if self.had_footer else '')
        skipped = f'; not kept: {dict(self.skipped)}' if self.skipped else ''
        topics = ', '.join(f'{t} {n}' for t, n in sorted(self.messages.items()))
        return f'{self.source} -> {self.out}: recovered {self.total} messages ({topics}){tail}{skipped}'


def _string(body: bytes, pos: int) -> tuple[str, int]:
    (n,) = _U32.unpack_from(body, pos)
    end = pos + 4 + n
    if end > len(body):
        raise struct.error('string past the end of its record')
    return body[pos + 4:end].decode(), end


def _records(data: bytes, pos: int, end: int, report: ReindexReport, nested: bool = False):
    """(opcode, body) of every complete record in data[pos:end]; stops at a torn record."""
    while pos < end:
        if pos + 9 > end:
            report.torn_bytes += end - pos
            return
        op = data[pos]
        (length,) = _U64.unpack_from(data, pos + 1)
        body_start = pos + 9
        if body_start + length > end:
            report.torn_bytes += end - pos
            return
        yield op, data[body_start:body_start + length]
        pos = body_start + length
        if op == OP_FOOTER and not nested:
            report.had_footer = True
            return


def scan(path: Path, report: ReindexReport):
    """Schemas, channels and (channel id, log time, CDR bytes) of every complete message."""
    from rosbags.rosbag2.storage_mcap import decompress

    data = path.read_bytes()
    if data[:8] != MAGIC:
        raise ReindexError(f'{path}: not an MCAP file (the file does not start with the MCAP magic bytes)')
    schemas: dict[int, tuple[str, str, str]] = {}
    channels: dict[int, tuple[str, int]] = {}
    messages: list[tuple[int, int, bytes]] = []

    def visit(op: int, body: bytes) -> None:
        if op == OP_SCHEMA:
            (sid,) = _U16.unpack_from(body, 0)
            name, pos = _string(body, 2)
            encoding, pos = _string(body, pos)
            (n,) = _U32.unpack_from(body, pos)
            schemas[sid] = (name, encoding, body[pos + 4:pos + 4 + n].decode())
        elif op == OP_CHANNEL:
            cid, sid = struct.unpack_from('<HH', body, 0)
            topic, _ = _string(body, 4)
            channels[cid] = (topic, sid)
        elif op == OP_MESSAGE:
            cid, _, log_time, _ = struct.unpack_from('<HIQQ', body, 0)
            messages.append((cid, log_time, body[22:]))

    for op, body in _records(data, 8, len(data), report):
        try:
            if op == OP_CHUNK:
                start, end, size, crc = struct.unpack_from('<QQQI', body, 0)
                compression, pos = _string(body, 28)
                (n,) = _U64.unpack_from(body, pos)
                raw = decompress(body[pos + 8:pos + 8 + n], compression, size, crc)
                for inner_op, inner in _records(raw, 0, len(raw), report, nested=True):
                    visit(inner_op, inner)
            else:
                visit(op, body)
        except (struct.error, UnicodeDecodeError, ValueError) as exc:
            report.skipped[f'damaged record (opcode {op:#04x}): {exc}'] += 1
        except Exception as exc:  # noqa: BLE001 - rosbags' decompress raises its ReaderError on a bad chunk
            report.skipped[f'damaged chunk: {exc}'] += 1
    return schemas, channels, messages


def reindex(bag: str | Path, out: str | Path | None = None) -> ReindexReport:
    """Write every complete message of the unfinished MCAP bag `bag` (a folder, or its .mcap file) to
    a new bag at `out` (default: `<bag>-reindexed`); returns what was recovered."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from distill_ros.data.bag import typestore

    bag = Path(bag)
    files = [bag] if bag.is_file() else sorted(bag.glob('*.mcap')) if bag.is_dir() else []
    if not bag.exists():
        raise ReindexError(f'{bag}: no such bag')
    if not files:
        raise ReindexError(f'{bag}: no .mcap file in the folder; expected a rosbag2 bag in MCAP storage')
    folder = bag.parent if bag.is_file() else bag
    out = Path(out) if out else folder.with_name(folder.name + '-reindexed')
    if out.exists():
        raise ReindexError(f'{out} already exists; give a new folder for the recovered bag')
    report = ReindexReport(source=bag, out=out)
    store = typestore()
    writer = Writer(out, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    try:
        connections: dict[tuple[str, str], object] = {}
        for path in files:
            schemas, channels, messages = scan(path, report)
            for cid, log_time, raw in messages:
                if cid not in channels or channels[cid][1] not in schemas:
                    report.skipped['message before its channel or schema'] += 1
                    continue
                topic, sid = channels[cid]
                msgtype = schemas[sid][0]
                if msgtype not in store.fielddefs:
                    report.skipped[f'type {msgtype} (not a standard ROS 2 type)'] += 1
                    continue
                key = (topic, msgtype)
                if key not in connections:
                    connections[key] = writer.add_connection(topic, msgtype, typestore=store)
                writer.write(connections[key], log_time, raw)
                report.messages[topic] += 1
    finally:
        writer.close()
    return report
